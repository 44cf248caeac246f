import { execFile, spawn } from "node:child_process";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { onPath } from "./tpm.js";

const exec = promisify(execFile);

/** The Debian packages {@link startUserManager} needs. */
export const USER_MANAGER_PACKAGES = "systemd dbus util-linux";

/** True when systemd, busctl, dbus-daemon and unshare are installed. */
export function userManagerAvailable(): boolean {
  return onPath("busctl") && onPath("dbus-daemon") && onPath("unshare") && onPath("systemctl");
}

/**
 * A real systemd user manager (`systemd --user`) on a private session bus, for tests of
 * what PSI asks systemd to do. No systemd runs as PID 1 here, and the manager refuses to
 * start unless /run/systemd/system exists, so it runs in a private mount namespace with a
 * tmpfs on /run/systemd; the host's /run is untouched. `env` reaches it
 * (`busctl --user`, `systemctl --user`).
 */
export interface UserManager {
  env: Record<string, string>;
  /** Where unit files go (`$XDG_CONFIG_HOME/systemd/user`). */
  unitDir: string;
  /** `systemctl --user ARGS` against this manager; stdout. */
  systemctl(...args: string[]): Promise<string>;
  /** A unit property (`MainPID`, `ActiveState`, `NRestarts`, ...). */
  property(unit: string, name: string): Promise<string>;
  /** Stops the manager (and so its units) and the bus. Idempotent. */
  stop(): Promise<void>;
}

/** Starts a user manager with its runtime, config and bus under `dir`. */
export async function startUserManager(dir: string): Promise<UserManager> {
  const runtime = join(dir, "run");
  const config = join(dir, "config");
  const home = join(dir, "home");
  const unitDir = join(config, "systemd", "user");
  await mkdir(runtime, { recursive: true, mode: 0o700 });
  await mkdir(unitDir, { recursive: true });
  await mkdir(home, { recursive: true });
  const env = {
    PATH: process.env["PATH"] ?? "/usr/bin:/bin",
    HOME: home,
    XDG_RUNTIME_DIR: runtime,
    XDG_CONFIG_HOME: config,
    DBUS_SESSION_BUS_ADDRESS: `unix:path=${join(runtime, "bus")}`,
  };
  const script = join(dir, "user-manager.sh");
  const busPid = join(dir, "bus.pid");
  await writeFile(
    script,
    [
      "set -e",
      "mkdir -p /run/systemd",
      "mount -t tmpfs tmpfs /run/systemd",
      "mkdir -p /run/systemd/system",
      `dbus-daemon --session --address="$DBUS_SESSION_BUS_ADDRESS" --fork --print-pid > ${busPid}`,
      // exec: the child's PID is the manager's, so stop() signals the manager itself.
      "exec /lib/systemd/systemd --user --log-target=console --log-level=warning",
    ].join("\n"),
  );
  const child = spawn("unshare", ["-m", "--propagation", "private", "bash", script], {
    env,
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));

  const systemctl = async (...args: string[]) =>
    (await exec("systemctl", ["--user", ...args], { env, encoding: "utf8" })).stdout;
  let stopped = false;
  const manager: UserManager = {
    env,
    unitDir,
    systemctl,
    async property(unit, name) {
      return (await systemctl("show", "--value", "-p", name, unit)).trim();
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      // SIGTERM: the manager stops its units, then exits.
      child.kill("SIGTERM");
      await Promise.race([exited, sleep(10_000)]);
      if (child.exitCode === null) child.kill("SIGKILL");
      const bus = Number.parseInt(await readFile(busPid, "utf8").catch(() => ""), 10);
      if (bus > 0) {
        try {
          process.kill(bus, "SIGTERM");
        } catch {
          // already gone
        }
      }
    },
  };
  // Ready once the manager answers on the bus with a settled state.
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null)
      throw new Error(`systemd --user exited (${child.exitCode}): ${stderr.trim()}`);
    try {
      const { stdout } = await exec(
        "busctl",
        [
          "--user",
          "get-property",
          "org.freedesktop.systemd1",
          "/org/freedesktop/systemd1",
          "org.freedesktop.systemd1.Manager",
          "SystemState",
        ],
        { env, encoding: "utf8" },
      );
      if (/"(running|degraded)"/.test(stdout)) return manager;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) {
      await manager.stop();
      throw new Error(`systemd --user did not come up: ${stderr.trim()}`);
    }
    await sleep(50);
  }
}
