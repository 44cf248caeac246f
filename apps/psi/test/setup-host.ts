// A PSI host for the setup tests (TESTING.md): the fake Infisical, a keyfile cache, a
// running `psi serve` from the built CLI, and an isolated real Podman whose shell driver
// calls that serve. `psi setup` itself runs in-process through runCli, with a PATH that
// finds no systemd tools (a developer's host is never reloaded).
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { request } from "node:http";
import { join } from "node:path";
import { Writable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { readCacheFile } from "@psi/cache";
import { initKeyfile, keyfileCacheBackendFromKey } from "@psi/cache-keyfile";
import type { CacheBackend } from "@psi/core";
import { cacheKeyer } from "@psi/envelope";
import type { SetupResult } from "@psi/setup";
import { type FakeInfisical, startFakeInfisical } from "@psi/testkit/fake-infisical";
import { type PodmanSandbox, podmanSandbox } from "@psi/testkit/podman";
import { tempDir } from "@psi/testkit/tmp";
import { renderDriverConf } from "@psi/unitgen";
import { runCli } from "../src/main.js";

export const CLI = fileURLToPath(new URL("../dist/cli.js", import.meta.url));

/** The Infisical project every test uses. */
export const PROJECT = {
  name: "proj",
  id: "11111111-2222-3333-4444-555555555555",
  environment: "prod",
};

export type WorkloadSpec = {
  provider?: string;
  unit?: string;
  on_change?: "none" | "restart";
  restart_unit?: string;
  depends_on?: string[];
  secrets?: Array<{ project: string; path: string; recursive?: boolean }>;
};

/** One in-process CLI run. */
export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

export interface SetupHost {
  dir: string;
  stateDir: string;
  systemdDir: string;
  cachePath: string;
  socket: string;
  fake: FakeInfisical;
  sandbox: PodmanSandbox;
  /** Environment of serve and of the in-process CLI runs. */
  env: Record<string, string>;
  /** Writes a config (JSON is YAML) and returns its path; the first one written is the default. */
  writeConfig(
    name: string,
    workloads: Record<string, WorkloadSpec>,
    infisical?: Record<string, unknown>,
  ): Promise<string>;
  /** `psi <args>` in-process; stdout and stderr are not TTYs unless `tty` (then setup prints text). */
  psi(args: string[], config?: string, tty?: boolean): Promise<CliRun>;
  /** `psi setup --json ...` and its parsed result. */
  setup(args?: string[], config?: string): Promise<CliRun & { result: SetupResult }>;
  startServe(): Promise<void>;
  stopServe(): Promise<void>;
  serveLog(): string;
  /** The value Podman's `podman create` received for secret `name` (through the driver and serve). */
  lookup(name: string): Promise<string>;
  /** Decrypted cache entries by mapping (canonical key), or undefined when the file is missing. */
  cacheValue(mapping: Record<string, unknown>): Promise<string | undefined>;
  cacheEntries(): Promise<number>;
  cacheBytes(): Promise<Buffer | undefined>;
  podmanNames(): Promise<string[]>;
  stop(): Promise<void>;
}

function collector(): { stream: Writable & { isTTY?: boolean }; text: () => string } {
  let text = "";
  const stream = new Writable({
    write(chunk: Buffer | string, _encoding, callback) {
      text += chunk.toString();
      callback();
    },
  }) as Writable & { isTTY?: boolean };
  stream.isTTY = false;
  return { stream, text: () => text };
}

function healthz(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ socketPath: socket, path: "/healthz", method: "GET" }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode === 200));
    });
    req.on("error", () => resolve(false));
    req.end();
  });
}

/** Starts everything; `secrets` are put into the fake as path → key → value. */
export async function startSetupHost(
  secrets: Record<string, Record<string, string>>,
): Promise<SetupHost> {
  if (!existsSync(CLI)) {
    throw new Error(
      `${CLI} is missing: build the CLI first (pnpm exec turbo run build --filter=@psi/cli...)`,
    );
  }
  const tmp = await tempDir("psi-setup-");
  const dir = tmp.path;
  const stateDir = join(dir, "state");
  const systemdDir = join(dir, "systemd");
  const socket = join(dir, "psi.sock");
  const keyFile = join(dir, "cache.keyfile");
  const cachePath = join(stateDir, "cache.enc");
  await mkdir(join(dir, "home"));
  await mkdir(join(dir, "run"));
  const key = await initKeyfile({ path: keyFile });
  const backend: CacheBackend = keyfileCacheBackendFromKey(key);
  await backend.open();

  const fake = await startFakeInfisical();
  fake.addUniversalAuth({
    clientId: "setup-client",
    clientSecret: "setup-secret-0123",
    identityId: "setup-id",
  });
  for (const [path, entries] of Object.entries(secrets)) {
    fake.addFolder({ projectId: PROJECT.id, environment: PROJECT.environment, path });
    for (const [name, value] of Object.entries(entries)) {
      fake.setSecret({
        projectId: PROJECT.id,
        environment: PROJECT.environment,
        path,
        key: name,
        value,
      });
    }
  }

  let defaultConfig: string | undefined;
  const env: Record<string, string> = {
    PATH: join(dir, "no-tools"),
    HOME: join(dir, "home"),
    XDG_RUNTIME_DIR: join(dir, "run"),
    PSI_SOCKET: socket,
  };

  const conf = renderDriverConf({ socket });
  const sandbox = await podmanSandbox(join(dir, "podman"), conf);
  await sandbox.startService();

  let serve: ChildProcess | undefined;
  let log = "";

  const host: SetupHost = {
    dir,
    stateDir,
    systemdDir,
    cachePath,
    socket,
    fake,
    sandbox,
    env,
    async writeConfig(name, workloads, infisical = {}) {
      const path = join(dir, `${name}.yaml`);
      const config = {
        scope: "user",
        state_dir: stateDir,
        systemd_dir: systemdDir,
        providers: {
          infisical: {
            api_url: fake.url,
            auth: {
              method: "universal-auth",
              client_id: "setup-client",
              client_secret: "setup-secret-0123",
            },
            projects: { [PROJECT.name]: { id: PROJECT.id, environment: PROJECT.environment } },
            retry_delays: [0.05, 0.05],
            setup_timeout: 2,
            lookup_timeout: 2,
            ...infisical,
          },
          local: {},
        },
        workloads,
        cache: { enabled: true, backend: "keyfile", key_file: keyFile, path: cachePath },
      };
      await writeFile(path, `${JSON.stringify(config, null, 2)}\n`);
      defaultConfig ??= path;
      return path;
    },
    async psi(args, config, tty = false) {
      const out = collector();
      const err = collector();
      out.stream.isTTY = tty;
      err.stream.isTTY = tty;
      const stdin = collector();
      const code = await runCli(args, {
        io: {
          stdout: out.stream,
          stderr: err.stream,
          stdin: stdin.stream as unknown as NodeJS.ReadableStream,
        },
        env: { ...env, PSI_CONFIG: config ?? defaultConfig ?? "" },
        uid: process.getuid?.() ?? 1000,
      });
      return { code, stdout: out.text(), stderr: err.text() };
    },
    async setup(args = [], config) {
      const run = await host.psi(
        ["--json", "setup", "--podman-socket", sandbox.socketPath, ...args],
        config,
      );
      let result: SetupResult;
      try {
        result = JSON.parse(run.stdout) as SetupResult;
      } catch {
        throw new Error(`psi setup printed no JSON (exit ${run.code}): ${run.stderr}`);
      }
      return { ...run, result };
    },
    async startServe() {
      log = "";
      const child = spawn(process.execPath, [CLI, "serve", "--socket", socket], {
        env: { ...env, PATH: process.env["PATH"] ?? "", PSI_CONFIG: defaultConfig ?? "" },
        stdio: ["ignore", "ignore", "pipe"],
      });
      serve = child;
      child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
        log += chunk;
      });
      for (let attempt = 0; ; attempt++) {
        if (child.exitCode !== null) throw new Error(`psi serve exited: ${log}`);
        if (await healthz(socket)) return;
        if (attempt > 400) throw new Error(`psi serve did not answer on ${socket}: ${log}`);
        await sleep(25);
      }
    },
    async stopServe() {
      const child = serve;
      serve = undefined;
      if (!child || child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      await exited;
    },
    serveLog: () => log,
    async lookup(name) {
      return (await sandbox.createWithSecret(name)).toString("utf8");
    },
    async cacheValue(mapping) {
      const decoded = await readCacheFile({ path: cachePath, backend });
      if (!decoded) return undefined;
      const value = decoded.entries.get(cacheKeyer(decoded.hmacKey)(mapping));
      return value === undefined ? undefined : Buffer.from(value).toString("utf8");
    },
    async cacheEntries() {
      const decoded = await readCacheFile({ path: cachePath, backend });
      return decoded?.entries.size ?? 0;
    },
    cacheBytes: () => readFile(cachePath).catch(() => undefined),
    async podmanNames() {
      const listed = await sandbox.run(["secret", "ls", "--format", "{{.Name}}"]);
      return listed.stdout
        .split("\n")
        .map((line) => line.trim())
        .filter(Boolean)
        .sort();
    },
    async stop() {
      await host.stopServe();
      await sandbox.stop();
      await fake.stop();
      await backend.close();
      await tmp.cleanup();
    },
  };
  return host;
}

/** Infisical mapping bytes as Podman stores them (Python json.dumps default form). */
export function mappingText(path: string, key: string): string {
  return `{"provider": "infisical", "project": "${PROJECT.name}", "path": "${path}", "key": "${key}"}`;
}
