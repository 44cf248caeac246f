import { spawn } from "node:child_process";
import { mkdir, rm, stat, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { createCacheStore, saveCache } from "@psi/cache";
import { createKeyfileCacheBackend, initKeyfile } from "@psi/cache-keyfile";
import { type CacheBackend, infisicalMappingBytes, parseMapping } from "@psi/core";
import { createLookupServer, type LookupServer } from "@psi/lookup-server";
import { curlAvailable, podmanAvailable, podmanSandbox } from "@psi/testkit/podman";
import { requireTool, tempDir } from "@psi/testkit/tmp";
import { captureLogger, unixRequest } from "@psi/testkit/unix-http";
import { renderDriverConf } from "@psi/unitgen";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { runPsi } from "./run-psi.js";

// `psi status` in-process through runCli, against a real lookup server on a Unix socket
// (the @psi/lookup-server that `psi serve` runs), a real keyfile cache and, for the drift
// summary, an isolated real Podman.

type Run = Awaited<ReturnType<typeof psi>>;

function psi(args: string[], env: Record<string, string>, tty = false) {
  return runPsi(args, { env, tty });
}

type StatusJson = {
  ok: boolean;
  serve: {
    socket: string;
    running: boolean;
    healthz_ms: number | null;
    error?: string;
    metrics: null | {
      lookups: { total: number; ok: number; failed: number; by_source: Record<string, number> };
      cache_entries: { file: number; memory: number };
    };
  };
  cache: {
    enabled: boolean;
    backend: string | null;
    exists: boolean;
    age_seconds: number | null;
    stale: boolean | null;
    stale_after_seconds: number | null;
    tag_backend: string | null;
    mismatch: boolean;
    entries: number | null;
  };
  providers: { name: string; workloads: number; fetches: boolean }[];
  drift: {
    podman_socket: string;
    reachable: boolean;
    error?: string;
    clean?: boolean;
    counts?: { managed: number; stale_opts: number; orphaned: number };
    workloads?: { name: string; missing_from_drop_in: number; missing_in_podman: number }[];
  };
  problems: { component: string; code: string; message: string; hint?: string }[];
  warnings: { component: string; code: string; message: string }[];
};

const SECRETS = [
  { id: "a1b2c3d4e5f6a7b8c9d0e1f2a", key: "DB_HOST", value: "status-VALUE-db-host-71" },
  { id: "b1b2c3d4e5f6a7b8c9d0e1f2b", key: "DB_PASSWORD", value: "status-VALUE-hunter2-72" },
].map((s) => ({
  ...s,
  mapping: infisicalMappingBytes({ project: "proj", path: "/myapp", key: s.key }),
}));

let dir: { path: string; cleanup: () => Promise<void> };
let env: Record<string, string>;
let stateDir: string;
let keyFile: string;
let cachePath: string;
let socket: string;
let config: string;
const servers: LookupServer[] = [];
const backends: CacheBackend[] = [];

async function writeConfig(extra: { cache?: string; token?: string } = {}): Promise<void> {
  await writeFile(
    config,
    [
      `state_dir: ${stateDir}`,
      ...(extra.token === undefined ? [] : [`socket_token: ${extra.token}`]),
      "providers:",
      "  infisical:",
      "    api_url: http://127.0.0.1:9",
      "    auth: { method: universal-auth, client_id: cid, client_secret: csecret }",
      "    projects: { proj: { id: 11111111-2222-3333-4444-555555555555, environment: prod } }",
      "  local: {}",
      "workloads:",
      "  myapp: { secrets: [{ project: proj, path: /myapp }] }",
      "  other: { secrets: [{ project: proj, path: /myapp }] }",
      "  vault: { provider: local }",
      extra.cache ??
        `cache: { enabled: true, backend: keyfile, key_file: ${keyFile}, path: ${cachePath}, refresh_interval: 1h }`,
      "",
    ].join("\n"),
  );
}

async function populate(): Promise<void> {
  for (const s of SECRETS) await writeFile(join(stateDir, s.id), s.mapping, { mode: 0o600 });
  const backend = createKeyfileCacheBackend({ path: keyFile });
  await backend.open();
  await saveCache({
    path: cachePath,
    backend,
    previous: null,
    prune: true,
    fetched: SECRETS.map((s) => ({
      mapping: parseMapping(s.mapping),
      value: Buffer.from(s.value),
    })),
  });
  await backend.close();
}

/** The lookup server `psi serve` runs, on `socket`, with the keyfile cache loaded. */
async function startLookupServer(token?: string): Promise<LookupServer> {
  const { logger } = captureLogger("warn");
  const backend = createKeyfileCacheBackend({ path: keyFile });
  await backend.open();
  backends.push(backend);
  const cache = createCacheStore({ path: cachePath, backend, logger });
  await cache.load();
  const server = createLookupServer({ stateDir, providers: new Map(), cache, token, logger });
  await server.listen({ path: socket });
  servers.push(server);
  return server;
}

async function status(args: string[] = [], tty = false): Promise<Run & { json: StatusJson }> {
  const run = await psi(["status", ...args], env, tty);
  let json: StatusJson;
  try {
    json = (tty ? {} : JSON.parse(run.stdout)) as StatusJson;
  } catch {
    throw new Error(`psi status printed no JSON (exit ${run.code}): ${run.stdout}${run.stderr}`);
  }
  for (const s of SECRETS) {
    expect(run.stdout).not.toContain(s.value);
    expect(run.stderr).not.toContain(s.value);
  }
  return { ...run, json };
}

const hoursAgo = (hours: number) => new Date(Date.now() - hours * 3_600_000);

beforeEach(async () => {
  dir = await tempDir("psi-status-");
  stateDir = join(dir.path, "state");
  keyFile = join(dir.path, "cache.keyfile");
  cachePath = join(stateDir, "cache.enc");
  socket = join(dir.path, "run", "psi.sock");
  config = join(dir.path, "config.yaml");
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  await mkdir(join(dir.path, "home"));
  env = {
    HOME: join(dir.path, "home"),
    XDG_RUNTIME_DIR: join(dir.path, "run"),
    PSI_CONFIG: config,
    PSI_SOCKET: socket,
    PSI_PODMAN_SOCKET: join(dir.path, "no-podman.sock"),
    PATH: process.env["PATH"] ?? "/usr/bin:/bin",
  };
  await initKeyfile({ path: keyFile });
  await writeConfig();
});

afterEach(async () => {
  for (const server of servers.splice(0)) await server.close();
  for (const backend of backends.splice(0)) await backend.close();
  await dir.cleanup();
});

describe("psi status", () => {
  it("healthy: serve answers, the cache is fresh, metrics give the entries; exit 0", async () => {
    await populate();
    await startLookupServer();
    const hit = await unixRequest(socket, { path: `/lookup/${SECRETS[0]!.id}` });
    expect(hit.status).toBe(200);

    const run = await status();
    expect(run.code, run.stdout).toBe(0);
    const { json } = run;
    expect(json.ok).toBe(true);
    expect(json.problems).toEqual([]);
    expect(json.serve.running).toBe(true);
    expect(json.serve.socket).toBe(socket);
    expect(typeof json.serve.healthz_ms).toBe("number");
    expect(json.serve.metrics?.lookups).toMatchObject({ total: 1, ok: 1, failed: 0 });
    expect(json.serve.metrics?.lookups.by_source).toEqual({ file: 1 });
    expect(json.cache).toMatchObject({
      enabled: true,
      backend: "keyfile",
      exists: true,
      stale: false,
      stale_after_seconds: 7200,
      tag_backend: "keyfile",
      mismatch: false,
      entries: 2,
    });
    expect(json.cache.age_seconds).toBeLessThan(60);
    expect(json.providers).toEqual([
      { name: "infisical", workloads: 2, fetches: true },
      { name: "local", workloads: 1, fetches: false },
    ]);
    expect(json.drift).toMatchObject({
      reachable: false,
      error: `Podman API not reachable at ${env["PSI_PODMAN_SOCKET"]}`,
    });
    expect(json.warnings.map((w) => w.code)).toEqual(["drift.unavailable"]);
  });

  it("serve down: exit 1, says it is not running and how to start it", async () => {
    await populate();
    const run = await status();
    expect(run.code).toBe(1);
    expect(run.json.ok).toBe(false);
    expect(run.json.serve).toMatchObject({ running: false, metrics: null });
    expect(run.json.serve.error).toBe(`not running (no socket at ${socket})`);
    expect(run.json.problems).toHaveLength(1);
    expect(run.json.problems[0]).toMatchObject({ component: "serve", code: "serve.down" });
    // uid 1000 → user scope
    expect(run.json.problems[0]!.hint).toContain("systemctl --user start psi-secrets.service");
    expect(run.json.problems[0]!.hint).toContain("psi serve");
    // the cache part still answers while serve is down
    expect(run.json.cache).toMatchObject({ exists: true, stale: false, entries: null });
  });

  it("a socket file nobody listens on is reported as not running", async () => {
    await populate();
    await mkdir(join(dir.path, "run"), { recursive: true });
    // A socket file left behind by a listener that was killed (SIGKILL removes nothing).
    const child = spawn(
      process.execPath,
      [
        "-e",
        "require('node:net').createServer().listen(process.argv[1], () => console.log('up'))",
        socket,
      ],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    await new Promise<void>((resolve) => child.stdout.once("data", () => resolve()));
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGKILL");
    await exited;
    expect((await stat(socket)).isSocket()).toBe(true);
    const run = await status(["--socket", socket]);
    expect(run.code).toBe(1);
    expect(run.json.serve.error).toBe(
      `not running (nothing listens on ${socket}; a stale socket file?)`,
    );
  });

  it("stale cache: older than 2 × refresh_interval is exit 1 with the reason; systemd spans parse", async () => {
    await populate();
    await startLookupServer();
    await utimes(cachePath, hoursAgo(3), hoursAgo(3));
    const stale = await status();
    expect(stale.code).toBe(1);
    expect(stale.json.cache.stale).toBe(true);
    expect(stale.json.cache.age_seconds).toBeGreaterThanOrEqual(3 * 3600 - 60);
    expect(stale.json.problems.map((p) => p.code)).toEqual(["cache.stale"]);
    expect(stale.json.problems[0]!.message).toContain("2 × refresh_interval (1h)");

    const spans: [string, number, boolean][] = [
      ["1h 30min", 10_800, false],
      ["30min", 3_600, true],
      ["5m", 600, true],
      ["1d", 172_800, false],
      ["5400", 10_800, false],
    ];
    for (const [span, limit, isStale] of spans) {
      await writeConfig({
        cache: `cache: { enabled: true, backend: keyfile, key_file: ${keyFile}, path: ${cachePath}, refresh_interval: "${span}" }`,
      });
      const run = await status();
      expect([span, run.json.cache.stale_after_seconds, run.json.cache.stale]).toEqual([
        span,
        limit,
        isStale,
      ]);
      expect(run.code).toBe(isStale ? 1 : 0);
    }
  });

  it("a never-written cache is stale when workloads fetch remotely; an off cache never is", async () => {
    const missing = await status();
    expect(missing.json.cache).toMatchObject({ exists: false, stale: true });
    expect(missing.json.problems.map((p) => p.code)).toEqual(["serve.down", "cache.stale"]);
    expect(missing.json.problems[1]!.message).toContain("never been written");

    await writeConfig({ cache: "cache: { enabled: false }" });
    await populate();
    await utimes(cachePath, hoursAgo(100), hoursAgo(100));
    const off = await status();
    expect(off.json.cache).toMatchObject({ enabled: false, stale: null });
    expect(off.json.problems.map((p) => p.code)).toEqual(["serve.down"]);
  });

  it("says when the on-disk tag differs from the configured backend", async () => {
    await populate();
    await writeConfig({
      cache: `cache: { enabled: true, backend: tpm, path: ${cachePath} }`,
    });
    const run = await status();
    expect(run.json.cache).toMatchObject({
      backend: "tpm",
      tag_backend: "keyfile",
      mismatch: true,
    });
    const problem = run.json.problems.find((p) => p.code === "cache.tag_mismatch");
    expect(problem?.message).toContain("keyfile backend (tag 0x03) but cache.backend is tpm");
  });

  it("reads /metrics with the configured socket token", async () => {
    const token = "status-token-0123456789";
    await writeConfig({ token });
    await populate();
    await startLookupServer(token);
    const run = await status();
    expect(run.code, run.stdout).toBe(0);
    expect(run.json.serve.metrics?.cache_entries).toEqual({ file: 2, memory: 0 });
    expect(run.stdout).not.toContain(token);

    // without the token /metrics answers 401: a warning, serve itself is healthy
    await writeConfig({});
    const refused = await status();
    expect(refused.code).toBe(0);
    expect(refused.json.serve.running).toBe(true);
    expect(refused.json.serve.metrics).toBeNull();
    expect(refused.json.warnings.map((w) => w.message).join("\n")).toContain("401");
  });

  it("prints a table on a terminal, JSON with --json", async () => {
    await populate();
    await utimes(cachePath, hoursAgo(5), hoursAgo(5));
    const table = await status([], true);
    expect(table.code).toBe(1);
    expect(table.stdout).toMatch(/^serve\s+DOWN {2}not running \(no socket at /m);
    expect(table.stdout).toMatch(/^cache\s+STALE {2}/m);
    expect(table.stdout).toMatch(/^providers\s+infisical \(2 workloads\), local \(1 workload\)/m);
    expect(table.stdout).toContain(`Podman API not reachable at ${env["PSI_PODMAN_SOCKET"]}`);
    expect(table.stdout).toContain("hint: start it: systemctl --user start psi-secrets.service");
    expect(table.stdout.trim().split("\n").at(-1)).toBe("unhealthy: serve.down, cache.stale");

    for (const args of [
      ["--json", "status"],
      ["status", "--json"],
    ]) {
      const forced = await psi(args, env, true);
      expect((JSON.parse(forced.stdout) as StatusJson).cache.stale).toBe(true);
    }
  });

  it("works without a configuration file: checks the socket, says what is missing", async () => {
    // Nothing at the scope's default path and none named (a named missing file is an error).
    delete env["PSI_CONFIG"];
    const run = await status();
    expect(run.code).toBe(1);
    expect(run.json.serve.running).toBe(false);
    expect(run.json.warnings.map((w) => w.code)).toContain("config.missing");
    expect(run.json.providers).toEqual([]);
  });
});

const noPodman =
  requireTool(podmanAvailable(), "podman", "podman") ||
  requireTool(curlAvailable(), "curl", "curl");

describe.skipIf(noPodman)("psi status drift summary (real Podman)", () => {
  it("summarizes the setup dry run: managed, orphaned, drop-in gaps", async () => {
    await populate();
    await startLookupServer();
    const sandbox = await podmanSandbox(join(dir.path, "podman"), renderDriverConf({ socket }));
    try {
      await sandbox.startService();
      for (const [name, s] of [
        ["myapp--DB_HOST", SECRETS[0]!],
        ["myapp--DB_PASSWORD", SECRETS[1]!],
      ] as const) {
        await sandbox.createSecret(name, s.mapping, "shell");
      }
      // One secret loses its mapping file: orphaned.
      const listed = await sandbox.run(["secret", "ls", "--format", "{{.ID}} {{.Name}}"]);
      const orphanId = listed.stdout
        .split("\n")
        .find((line) => line.endsWith(" myapp--DB_PASSWORD"))!
        .split(" ")[0]!;
      await rm(join(stateDir, orphanId));

      const run = await status(["--podman-socket", sandbox.socketPath]);
      expect(run.code, run.stdout).toBe(0);
      expect(run.json.drift).toMatchObject({
        podman_socket: sandbox.socketPath,
        reachable: true,
        clean: false,
        counts: { managed: 1, stale_opts: 0, orphaned: 1 },
        workloads: [{ name: "myapp", missing_from_drop_in: 2, missing_in_podman: 0 }],
      });
      expect(run.json.warnings.map((w) => w.code)).toEqual(["drift.found"]);

      const table = await status(["--podman-socket", sandbox.socketPath], true);
      expect(table.stdout).toMatch(/^drift\s+DRIFT {2}1 managed, 0 stale-opts, 1 orphaned/m);
    } finally {
      await sandbox.stop();
    }
  });
});
