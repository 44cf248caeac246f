import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdir, readdir, readFile, stat, writeFile } from "node:fs/promises";
import { request } from "node:http";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

/** True when the `podman` binary is on PATH. */
export function podmanAvailable(): boolean {
  try {
    execFileSync("podman", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** True when `curl` (what the shell driver runs) is on PATH. */
export function curlAvailable(): boolean {
  try {
    execFileSync("curl", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** The result of one podman CLI run. */
export interface PodmanRun {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * A Podman isolated from the host's (TESTING.md): its own --root/--runroot with the vfs
 * driver, CONTAINERS_CONF pointing at the given text, and (after `startService`) a REST API
 * on `<dir>/podman.sock`.
 */
export interface PodmanSandbox {
  readonly dir: string;
  readonly storage: string;
  /** Path of the REST API socket (listening once `startService` resolved). */
  readonly socketPath: string;
  /** Environment for podman runs (CONTAINERS_CONF set). */
  readonly env: NodeJS.ProcessEnv;
  /** Global flags that isolate storage. */
  readonly flags: string[];
  /** Runs `podman <flags> <args>`; never throws on a non-zero exit. */
  run(args: string[], input?: string | Uint8Array): Promise<PodmanRun>;
  /**
   * `podman secret create [--driver DRIVER] NAME -` with `data` on stdin; returns the
   * secret's ID and throws with Podman's stderr when it fails.
   */
  createSecret(name: string, data: string | Uint8Array, driver?: string): Promise<string>;
  /** Starts `podman system service --time=0 unix://<dir>/podman.sock` and waits for `_ping`. */
  startService(): Promise<void>;
  /**
   * `podman create --secret NAME,type=mount,target=/run/secrets/x --rootfs <dir>/rootfs /bin/true`
   * and returns the bytes Podman wrote for the container (the value the driver's lookup gave).
   */
  createWithSecret(name: string): Promise<Buffer>;
  /**
   * The same through the REST API (`POST /libpod/containers/create` with a secret mount),
   * returning the bytes Podman wrote for the container. Needs `startService`.
   */
  createWithSecretViaApi(name: string): Promise<Buffer>;
  /** Stops the service it started (by PID). */
  stop(): Promise<void>;
}

/** Prepares a sandbox under `dir` using `containersConf` as the only containers.conf. */
export async function podmanSandbox(dir: string, containersConf: string): Promise<PodmanSandbox> {
  const storage = join(dir, "storage");
  const runroot = join(dir, "run");
  const confPath = join(dir, "containers.conf");
  await mkdir(join(dir, "rootfs"), { recursive: true });
  await writeFile(confPath, containersConf);
  const socketPath = join(dir, "podman.sock");
  const env: NodeJS.ProcessEnv = { ...process.env, CONTAINERS_CONF: confPath };
  const flags = ["--root", storage, "--runroot", runroot, "--storage-driver", "vfs"];
  let service: ChildProcess | undefined;
  let serviceLog = "";

  const run = (args: string[], input?: string | Uint8Array): Promise<PodmanRun> =>
    new Promise((resolve, reject) => {
      // `podman secret create NAME -` insists on a pipe (Go's ModeNamedPipe); Node gives
      // children a socketpair, so data goes through `cat |`.
      const child =
        input === undefined
          ? spawn("podman", [...flags, ...args], { env, stdio: ["pipe", "pipe", "pipe"] })
          : spawn("sh", ["-c", 'cat | podman "$@"', "sh", ...flags, ...args], {
              env,
              stdio: ["pipe", "pipe", "pipe"],
            });
      let stdout = "";
      let stderr = "";
      child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
        stdout += chunk;
      });
      child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
        stderr += chunk;
      });
      child.on("error", reject);
      child.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
      child.stdin.end(input);
    });

  return {
    dir,
    storage,
    socketPath,
    env,
    flags,
    run,
    async createSecret(name, data, driver) {
      const args = ["secret", "create", ...(driver ? ["--driver", driver] : []), name, "-"];
      const created = await run(args, data);
      if (created.code !== 0) throw new Error(`podman secret create ${name}: ${created.stderr}`);
      return created.stdout.trim();
    },
    async startService() {
      const child = spawn(
        "podman",
        [...flags, "system", "service", "--time=0", `unix://${socketPath}`],
        {
          env,
          stdio: ["ignore", "ignore", "pipe"],
        },
      );
      service = child;
      child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
        serviceLog += chunk;
      });
      for (let attempt = 0; attempt < 300; attempt++) {
        if (child.exitCode !== null) throw new Error(`podman system service exited: ${serviceLog}`);
        if (await pingOk(socketPath)) return;
        await sleep(50);
      }
      throw new Error(`podman system service did not answer on ${socketPath}: ${serviceLog}`);
    },
    async createWithSecret(name) {
      const created = await run([
        "create",
        "--secret",
        `${name},type=mount,target=/run/secrets/x`,
        "--rootfs",
        join(dir, "rootfs"),
        "/bin/true",
      ]);
      if (created.code !== 0) throw new Error(`podman create failed: ${created.stderr}`);
      const id = created.stdout.trim();
      const file = await findSecretFile(storage, id, name);
      return readFile(file);
    },
    async createWithSecretViaApi(name) {
      const body = JSON.stringify({
        rootfs: join(dir, "rootfs"),
        command: ["/bin/true"],
        secrets: [{ source: name, target: "/run/secrets/x" }],
      });
      const answer = await apiRequest(socketPath, "POST", "/v5.0.0/libpod/containers/create", body);
      if (answer.status !== 201 && answer.status !== 200) {
        throw new Error(`container create through the API failed: ${answer.status} ${answer.body}`);
      }
      const id = (JSON.parse(answer.body) as { Id: string }).Id;
      return readFile(await findSecretFile(storage, id, name));
    },
    async stop() {
      const child = service;
      service = undefined;
      if (!child || child.exitCode !== null || child.pid === undefined) return;
      const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
      child.kill("SIGTERM");
      const done = await Promise.race([exited.then(() => true), sleep(10_000).then(() => false)]);
      if (!done) {
        child.kill("SIGKILL");
        await exited;
      }
    },
  };
}

function apiRequest(
  socketPath: string,
  method: string,
  path: string,
  body: string,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        socketPath,
        method,
        path,
        headers: { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) },
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8").on("data", (chunk: string) => {
          text += chunk;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

function pingOk(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ socketPath, path: "/_ping", method: "GET", timeout: 1000 }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode === 200));
    });
    req.on("error", () => resolve(false));
    req.on("timeout", () => req.destroy());
    req.end();
  });
}

/** Finds the file Podman wrote for secret `name` of container `id` (path depends on the driver). */
async function findSecretFile(storage: string, id: string, name: string): Promise<string> {
  const queue = [storage];
  while (queue.length > 0) {
    const current = queue.shift()!;
    let entries: string[];
    try {
      entries = await readdir(current);
    } catch {
      continue;
    }
    for (const entry of entries) {
      const path = join(current, entry);
      const info = await stat(path).catch(() => undefined);
      if (!info) continue;
      if (info.isDirectory()) {
        queue.push(path);
      } else if (
        entry === name &&
        path.includes(id) &&
        path.includes(`${join("userdata", "secrets")}`)
      ) {
        return path;
      }
    }
  }
  throw new Error(`no file for secret ${name} of container ${id} under ${storage}`);
}

/**
 * A containers.conf whose shell driver keeps each secret's data in `stateDir/<ID>` with
 * `cat` (what psi serve's /store does), so Podman can register secrets without psi serve.
 */
export function stateDirDriverConf(stateDir: string): string {
  return [
    "[secrets]",
    'driver = "shell"',
    "[secrets.opts]",
    `store = "cat > ${stateDir}/$SECRET_ID"`,
    `lookup = "cat ${stateDir}/$SECRET_ID"`,
    `delete = "rm -f ${stateDir}/$SECRET_ID"`,
    `list = "ls ${stateDir}"`,
    "",
  ].join("\n");
}

/**
 * Environment for `podman` (or a psi that runs it) with its own vfs store under `dir`:
 * CONTAINERS_STORAGE_CONF and an empty CONTAINERS_CONF, for `podman build` and `image mount`.
 */
export async function isolatedPodmanEnv(dir: string): Promise<Record<string, string>> {
  await mkdir(dir, { recursive: true });
  const storage = join(dir, "storage.conf");
  await writeFile(
    storage,
    `[storage]\ndriver = "vfs"\ngraphroot = "${join(dir, "storage")}"\nrunroot = "${join(dir, "run")}"\n`,
  );
  await writeFile(join(dir, "containers.conf"), "");
  return {
    CONTAINERS_STORAGE_CONF: storage,
    CONTAINERS_CONF: join(dir, "containers.conf"),
    PATH: process.env["PATH"] ?? "/usr/bin:/bin",
    HOME: join(dir, "home"),
    XDG_RUNTIME_DIR: join(dir, "xdg"),
  };
}
