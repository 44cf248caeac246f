import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync, realpathSync } from "node:fs";
import { chmod, mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  renderSecretsDropIn,
  renderServeUnit,
  renderSetupUnit,
  type UnitSettings,
} from "../src/index.js";
import { sandboxScript, spawnSandboxed } from "./sandbox.js";
import { hasTool } from "./tools.js";

// Checks that serve and setup still do their job under the sandboxing their native units
// emit (README, "How the hardening was checked"). systemd is not PID 1 here, so the
// directives are applied by sandbox.ts the way systemd applies them.
const run = promisify(execFile);
const probes = join(dirname(fileURLToPath(import.meta.url)), "probes");
// The checkout and Node, which the sandboxed process needs even when they sit under /tmp.
const keep = [resolve(probes, "../../../.."), dirname(realpathSync(process.execPath))];
const canSandbox =
  hasTool("unshare", "unshare (root, mount namespaces)", "util-linux", ["--mount", "true"]) &&
  hasTool("setpriv", "setpriv", "util-linux") &&
  hasTool("prlimit", "prlimit", "util-linux") &&
  hasTool("/usr/bin/python3", "python3 (loads the seccomp filter through libseccomp)", "python3") &&
  hasTool("/usr/bin/python3", "libseccomp", "libseccomp2", [
    "-c",
    "import ctypes; ctypes.CDLL('libseccomp.so.2')",
  ]);
const canPodman = hasTool("podman", "podman", "podman");

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
async function until<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
): Promise<T> {
  for (let i = 0; i < 300; i++) {
    const value = await probe();
    if (value !== undefined) return value;
    await sleep(100);
  }
  throw new Error(`gave up waiting for ${what}`);
}
async function curl(args: string[]): Promise<string | undefined> {
  try {
    return (await run("curl", ["-sf", ...args])).stdout;
  } catch {
    return undefined;
  }
}
function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) resolve(child.exitCode);
    else child.on("exit", (code) => resolve(code));
  });
}

let root = "";
let settings: UnitSettings;
beforeAll(async () => {
  // Not under /tmp: PrivateTmp= hides it from the sandboxed process.
  root = await mkdtemp("/run/psi-unitgen-");
  settings = {
    scope: "system",
    configFile: join(root, "etc/psi/config.yaml"),
    defaultConfigFile: join(root, "etc/psi/config.yaml"),
    configDir: join(root, "etc/psi"),
    stateDir: join(root, "var/lib/psi"),
    systemdDir: join(root, "etc/containers/systemd"),
    socket: join(root, "run/psi/psi.sock"),
    podmanSocket: join(root, "run/podman/podman.sock"),
    dbusSocket: "/run/dbus/system_bus_socket",
    runtimeDir: "/run",
    providers: ["infisical"],
    cache: {
      backend: "tpm",
      path: join(root, "var/lib/psi/cache.enc"),
      refreshInterval: "1h",
      refreshRandomizedDelay: "5m",
    },
    pcscdVolume: "pcscd-socket",
    tlsOutputDirs: [],
  };
  for (const dir of [
    settings.configDir,
    settings.stateDir,
    settings.systemdDir,
    dirname(settings.podmanSocket),
  ]) {
    await mkdir(dir, { recursive: true });
  }
  // What RuntimeDirectory=psi / RuntimeDirectoryMode=0700 create before the namespace is set up.
  await mkdir(dirname(settings.socket), { recursive: true, mode: 0o700 });
  await writeFile(join(settings.configDir, "config.yaml"), "providers: {}\n", { mode: 0o600 });
  // What LoadCredentialEncrypted=psi-cache-key:... leaves for the service.
  await mkdir(join(root, "credentials"), { mode: 0o500 });
  await writeFile(join(root, "credentials/psi-cache-key"), Buffer.alloc(32, 7), { mode: 0o400 });
});
afterAll(async () => {
  if (root) await rm(root, { recursive: true, force: true });
});

describe.skipIf(!canSandbox)("native hardening is tolerated", () => {
  it("every sandboxing directive of the serve and setup units has an emulation", () => {
    expect(() =>
      sandboxScript(renderServeUnit(settings, { nodePath: "/x", psiPath: "/x" }), ["true"], root),
    ).not.toThrow();
    expect(() =>
      sandboxScript(
        renderSetupUnit(settings, "infisical", { nodePath: "/x", psiPath: "/x" }),
        ["true"],
        root,
      ),
    ).not.toThrow();
    expect(() => sandboxScript("[Service]\nMemoryDenyWriteExecute=yes\n", ["true"], root)).toThrow(
      /no emulation/,
    );
  });

  it("serve: binds its socket, answers, stores mappings; no core dumps, no privileges, read-only system", async () => {
    const unit = renderServeUnit(settings, { nodePath: "/unused", psiPath: "/unused" });
    const { child, output } = spawnSandboxed(
      unit,
      [process.execPath, join(probes, "serve-probe.mjs")],
      {
        scratch: root,
        keep,
        env: {
          PATH: process.env["PATH"] ?? "/usr/bin:/bin",
          PSI_CONFIG_DIR: settings.configDir,
          PSI_STATE_DIR: settings.stateDir,
          PSI_SOCKET: settings.socket,
          CREDENTIALS_DIRECTORY: join(root, "credentials"),
        },
      },
    );
    try {
      const line = await until("serve to listen", () =>
        child.exitCode !== null
          ? ""
          : output()
              .split("\n")
              .find((l) => l.startsWith("{")),
      );
      expect(line, output()).not.toBe("");
      const report = JSON.parse(line);
      expect(report).toMatchObject({
        config: true,
        credentialBytes: 32,
        core: "0 0",
        noNewPrivs: "1",
        capEff: "0000000000000000",
        seccomp: "2",
        writeEtc: "EROFS",
        writeTmp: "ok",
      });
      expect(existsSync(report.tmpFile)).toBe(false); // PrivateTmp: its /tmp is not the host's
      expect(await curl(["--unix-socket", settings.socket, "http://localhost/healthz"])).toBe("ok");
      expect((await stat(settings.socket)).mode & 0o777).toBe(0o600);
      const mapping = '{"provider": "local", "blob": "AAAA"}';
      expect(
        await curl([
          "--unix-socket",
          settings.socket,
          "-X",
          "POST",
          "-d",
          mapping,
          "http://localhost/store/ab12",
        ]),
      ).toBe("ok");
      expect(await readFile(join(settings.stateDir, "ab12"), "utf8")).toBe(mapping);
      expect((await stat(join(settings.stateDir, "ab12"))).mode & 0o777).toBe(0o600);
    } finally {
      child.kill("SIGTERM");
    }
    expect(await exited(child)).toBe(0);
    expect(existsSync(settings.socket)).toBe(false);
  });

  it.skipIf(!canPodman)(
    "setup: talks to Podman on its socket, writes the drop-in and cache.enc",
    async () => {
      const storage = join(root, "podman");
      await mkdir(storage, { recursive: true });
      await writeFile(join(storage, "containers.conf"), "");
      const podman = spawn(
        "podman",
        [
          "--root",
          join(storage, "root"),
          "--runroot",
          join(storage, "run"),
          "--storage-driver",
          "vfs",
          "system",
          "service",
          "--time=0",
          `unix://${settings.podmanSocket}`,
        ],
        {
          env: { ...process.env, CONTAINERS_CONF: join(storage, "containers.conf") },
          stdio: "ignore",
        },
      );
      try {
        await until("the Podman API", () =>
          curl(["--unix-socket", settings.podmanSocket, "http://d/v5.0.0/libpod/_ping"]),
        );
        const dropIn = renderSecretsDropIn({ workload: "myapp", keys: ["DB_HOST"] });
        const unit = renderSetupUnit(settings, "infisical", {
          nodePath: "/unused",
          psiPath: "/unused",
        });
        const { child, output } = spawnSandboxed(
          unit,
          [process.execPath, join(probes, "setup-probe.mjs")],
          {
            scratch: root,
            keep,
            env: {
              PATH: process.env["PATH"] ?? "/usr/bin:/bin",
              PSI_STATE_DIR: settings.stateDir,
              PSI_SYSTEMD_DIR: settings.systemdDir,
              PSI_PODMAN_SOCKET: settings.podmanSocket,
              PSI_DROP_IN: dropIn.text,
            },
          },
        );
        expect(await exited(child), output()).toBe(0);
        expect(JSON.parse(output().trim())).toEqual({
          podman: 200,
          secrets: 0,
          noNewPrivs: "1",
          writeEtc: "EROFS",
        });
        expect(await readFile(join(settings.systemdDir, dropIn.path), "utf8")).toBe(dropIn.text);
        expect(existsSync(join(settings.stateDir, "cache.enc"))).toBe(true);
      } finally {
        podman.kill("SIGTERM");
        await exited(podman);
      }
    },
  );

  it("the emulation confines: a path outside ReadWritePaths is read-only", async () => {
    const outside = join(root, "outside");
    await mkdir(outside, { recursive: true });
    await chmod(outside, 0o777);
    const unit = renderSetupUnit(settings, "infisical", {
      nodePath: "/unused",
      psiPath: "/unused",
    });
    const { child, output } = spawnSandboxed(
      unit,
      ["sh", "-c", `touch ${outside}/x 2>&1; touch ${settings.stateDir}/y && echo state-ok`],
      {
        scratch: root,
        keep,
        env: { PATH: process.env["PATH"] ?? "/usr/bin:/bin" },
      },
    );
    await exited(child);
    expect(output()).toContain("Read-only file system");
    expect(output()).toContain("state-ok");
  });
});
