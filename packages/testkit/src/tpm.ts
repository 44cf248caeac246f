import { spawn } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { delimiter, join } from "node:path";

/**
 * A real TPM 2.0 (swtpm/libtpms) behind two loopback TCP ports, as TESTING.md's TPM2
 * recipe starts it. `device` is the TCTI string systemd-creds takes in `--tpm2-device=`;
 * `env` carries it as `SYSTEMD_TPM2_DEVICE` for `systemd-creds decrypt`.
 */
export interface Swtpm {
  port: number;
  ctrlPort: number;
  pid: number;
  device: string;
  env: Record<string, string>;
  /**
   * Flushes every loaded session, as the kernel's resource manager (/dev/tpmrm0) does
   * when a client closes. swtpm has none, and `systemd-creds decrypt` (252) leaves its
   * policy session loaded, so after three decrypts the TPM has no session slots left.
   */
  flushSessions(): Promise<void>;
  /** Stops this swtpm by its PID (and only it). Idempotent. */
  stop(): Promise<void>;
}

/** True when `command` is an executable file on PATH. */
export function onPath(command: string, path: string = process.env["PATH"] ?? ""): boolean {
  return path.split(delimiter).some((dir) => {
    if (dir === "") return false;
    try {
      accessSync(join(dir, command), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** True when swtpm, systemd-creds and tpm2-tools are installed (Debian: `swtpm systemd tpm2-tools`). */
export function tpmToolsAvailable(): boolean {
  return onPath("swtpm") && onPath("systemd-creds") && onPath("tpm2_flushcontext");
}

/** The Debian packages {@link tpmToolsAvailable} looks for, for `requireTool()`. */
export const TPM_PACKAGES = "swtpm systemd tpm2-tools libtss2-tcti-swtpm0";

interface RunResult {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

function run(
  command: string,
  args: string[],
  options: { input?: Uint8Array; env?: Record<string, string | undefined> } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      env: { ...process.env, ...options.env },
      stdio: ["pipe", "pipe", "pipe"],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (chunk: Buffer) => out.push(chunk));
    child.stderr.on("data", (chunk: Buffer) => err.push(chunk));
    child.on("error", reject);
    child.on("close", (code) =>
      resolve({ code, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString("utf8") }),
    );
    child.stdin.end(options.input === undefined ? undefined : Buffer.from(options.input));
  });
}

/** A port the kernel just handed out on 127.0.0.1 (and released again). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Two adjacent free ports (swtpm's server and control sockets). */
async function freePortPair(): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt += 1) {
    const port = await freePort();
    if (port >= 65535) continue;
    const next = await new Promise<boolean>((resolve) => {
      const server = createServer();
      server.once("error", () => resolve(false));
      server.listen(port + 1, "127.0.0.1", () => server.close(() => resolve(true)));
    });
    if (next) return port;
  }
  throw new Error("no two adjacent free TCP ports on 127.0.0.1");
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Starts swtpm (`--daemon`, `--pid file=`) with its state under `dir` on free loopback
 * ports. Retries on a port race. Stop it with `stop()`, which signals its PID only.
 */
export async function startSwtpm(dir: string): Promise<Swtpm> {
  const stateDir = join(dir, "swtpm-state");
  const pidFile = join(dir, "swtpm.pid");
  await mkdir(stateDir, { recursive: true });
  let lastError = "";
  for (let attempt = 0; attempt < 5; attempt += 1) {
    const port = await freePortPair();
    await rm(pidFile, { force: true });
    const result = await run("swtpm", [
      "socket",
      "--tpmstate",
      `dir=${stateDir}`,
      "--tpm2",
      "--server",
      `type=tcp,port=${port},bindaddr=127.0.0.1`,
      "--ctrl",
      `type=tcp,port=${port + 1},bindaddr=127.0.0.1`,
      "--flags",
      "not-need-init,startup-clear",
      "--daemon",
      "--pid",
      `file=${pidFile}`,
    ]);
    if (result.code !== 0) {
      lastError = result.stderr.trim();
      continue;
    }
    const pid = Number.parseInt((await readFile(pidFile, "utf8")).trim(), 10);
    if (!Number.isInteger(pid) || pid <= 0)
      throw new Error(`swtpm wrote no usable PID to ${pidFile}`);
    const device = `swtpm:port=${port}`;
    let stopped = false;
    return {
      port,
      ctrlPort: port + 1,
      pid,
      device,
      env: { SYSTEMD_TPM2_DEVICE: device },
      async flushSessions() {
        const flushed = await run("tpm2_flushcontext", ["--loaded-session"], {
          env: { TPM2TOOLS_TCTI: device },
        });
        if (flushed.code !== 0) {
          throw new Error(
            `tpm2_flushcontext failed (exit ${flushed.code}): ${flushed.stderr.trim()}`,
          );
        }
      },
      async stop() {
        if (stopped) return;
        stopped = true;
        if (!alive(pid)) return;
        process.kill(pid, "SIGTERM");
        for (let i = 0; i < 100 && alive(pid); i += 1) {
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
        if (alive(pid)) process.kill(pid, "SIGKILL");
      },
    };
  }
  throw new Error(`swtpm failed to start: ${lastError}`);
}

/**
 * Environment that makes systemd-creds keep its host key (`--with-key=host`) in `dir`
 * instead of /var/lib/systemd/credential.secret; systemd-creds creates it on first use.
 */
export function hostKeyEnv(dir: string): Record<string, string> {
  return { SYSTEMD_CREDENTIAL_SECRET: join(dir, "credential.secret") };
}

/**
 * What `LoadCredentialEncrypted=<name>:<credential>` does when a unit starts: decrypts
 * the sealed credential (through swtpm when `tpm` is given, with the host key from
 * `env`) into `<credsDir>/<name>` (created 0600). Returns that directory, ready to be
 * `CREDENTIALS_DIRECTORY`. Throws with systemd-creds's stderr on failure.
 */
export async function decryptCredential(options: {
  credential: string;
  credsDir: string;
  tpm?: Swtpm;
  name?: string;
  env?: Record<string, string>;
}): Promise<string> {
  const name = options.name ?? "psi-cache-key";
  const result = await run(
    "systemd-creds",
    ["decrypt", `--name=${name}`, options.credential, "-"],
    {
      env: { ...options.tpm?.env, ...options.env },
    },
  );
  await options.tpm?.flushSessions();
  if (result.code !== 0) {
    throw new Error(`systemd-creds decrypt failed (exit ${result.code}): ${result.stderr.trim()}`);
  }
  await writeCredential(options.credsDir, name, result.stdout);
  return options.credsDir;
}

/** Puts raw bytes into `<credsDir>/<name>` (0600, never overwriting), as systemd would. */
export async function writeCredential(
  credsDir: string,
  name: string,
  bytes: Uint8Array,
): Promise<string> {
  await mkdir(credsDir, { recursive: true, mode: 0o700 });
  const path = join(credsDir, name);
  await writeFile(path, bytes, { mode: 0o600, flag: "wx" });
  return path;
}
