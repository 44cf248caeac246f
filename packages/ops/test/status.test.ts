import { mkdir, readFile, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { createCacheStore, saveCache } from "@psi/cache";
import { createKeyfileCacheBackend, initKeyfile } from "@psi/cache-keyfile";
import { infisicalMappingBytes, loadConfig, parseMapping } from "@psi/core";
import { createLookupServer, type LookupServer } from "@psi/lookup-server";
import { tempDir } from "@psi/testkit/tmp";
import { captureLogger } from "@psi/testkit/unix-http";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { collectStatus, statusReportJson } from "../src/index.js";

// collectStatus as a frontend calls it, against a real lookup server on a Unix socket
// with a real keyfile cache; no CLI involved.

let dir: { path: string; cleanup: () => Promise<void> };
let stateDir: string;
let keyFile: string;
let cachePath: string;
let socket: string;
let configPath: string;
let env: Record<string, string>;
const closers: (() => Promise<void>)[] = [];

const mapping = infisicalMappingBytes({ project: "proj", path: "/app", key: "K" });

beforeEach(async () => {
  dir = await tempDir("psi-ops-status-");
  stateDir = join(dir.path, "state");
  keyFile = join(dir.path, "cache.keyfile");
  cachePath = join(stateDir, "cache.enc");
  socket = join(dir.path, "psi.sock");
  configPath = join(dir.path, "config.yaml");
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  await initKeyfile({ path: keyFile });
  env = { HOME: dir.path, XDG_RUNTIME_DIR: dir.path, PSI_PODMAN_SOCKET: join(dir.path, "none") };
  await writeFile(
    configPath,
    [
      `state_dir: ${stateDir}`,
      "providers:",
      "  infisical:",
      "    api_url: http://127.0.0.1:9",
      "    auth: { method: universal-auth, client_id: cid, client_secret: csecret }",
      "    projects: { proj: { id: 11111111-2222-3333-4444-555555555555, environment: prod } }",
      "workloads:",
      "  app: { secrets: [{ project: proj, path: /app }] }",
      `cache: { enabled: true, backend: keyfile, key_file: ${keyFile}, path: ${cachePath}, refresh_interval: 1h }`,
      "",
    ].join("\n"),
  );
  const backend = createKeyfileCacheBackend({ path: keyFile });
  await backend.open();
  await saveCache({
    path: cachePath,
    backend,
    previous: null,
    prune: true,
    fetched: [{ mapping: parseMapping(mapping), value: Buffer.from("v") }],
  });
  await backend.close();
});

afterEach(async () => {
  for (const close of closers.splice(0)) await close();
  await dir.cleanup();
});

async function serve(): Promise<LookupServer> {
  const { logger } = captureLogger("warn");
  const backend = createKeyfileCacheBackend({ path: keyFile });
  await backend.open();
  const cache = createCacheStore({ path: cachePath, backend, logger });
  await cache.load();
  const server = createLookupServer({ stateDir, providers: new Map(), cache, logger });
  await server.listen({ path: socket });
  closers.push(async () => {
    await server.close();
    await backend.close();
  });
  return server;
}

describe("collectStatus", () => {
  it("reports a healthy host: serve's metrics, the cache file, providers", async () => {
    await serve();
    const loaded = await loadConfig({ path: configPath, env, uid: process.getuid!() });
    const report = await collectStatus({ loaded, env, uid: process.getuid!(), socket });
    expect(report.ok).toBe(true);
    expect(report.serve.running).toBe(true);
    expect(report.serve.metrics?.cacheEntries.file).toBe(1);
    expect(report.cache).toMatchObject({
      enabled: true,
      backend: "keyfile",
      stale: false,
      state: "ok",
    });
    expect(report.cache.entries).toBe(1);
    expect(report.providers).toEqual([{ name: "infisical", workloads: 1, fetches: true }]);
    expect(report.drift.reachable).toBe(false);
    expect(report.warnings.map((w) => w.code)).toEqual(["drift.unavailable"]);
  });

  it("reports serve down and a stale cache as problems, with hints", async () => {
    const old = new Date(Date.now() - 3 * 3_600_000);
    await utimes(cachePath, old, old);
    const loaded = await loadConfig({ path: configPath, env, uid: process.getuid!() });
    const report = await collectStatus({ loaded, env, uid: process.getuid!(), socket });
    expect(report.ok).toBe(false);
    expect(report.serve.error).toBe(`not running (no socket at ${socket})`);
    expect(report.problems.map((p) => p.code)).toEqual(["serve.down", "cache.stale"]);
    expect(report.cache.state).toBe("stale");
    expect(report.problems[1]?.message).toContain("last written 3h ago");
    expect(report.problems.every((p) => p.hint !== undefined)).toBe(true);
  });

  it("checks only the socket without a configuration", async () => {
    await serve();
    const report = await collectStatus({ loaded: undefined, env, uid: process.getuid!(), socket });
    expect(report.serve.running).toBe(true);
    expect(report.config).toBeUndefined();
    expect(report.warnings.map((w) => w.code)).toContain("config.missing");
    expect(report.drift.error).toBe("no configuration file: nothing to compare with Podman");
  });
});

describe("statusReportJson", () => {
  it("is the report with snake_case keys, nulls for the unknown, the mode in octal", async () => {
    await serve();
    const loaded = await loadConfig({ path: configPath, env, uid: process.getuid!() });
    const json = statusReportJson(
      await collectStatus({ loaded, env, uid: process.getuid!(), socket }),
    ) as Record<string, Record<string, unknown>>;
    expect(json["serve"]).toMatchObject({ socket, running: true });
    expect(json["serve"]?.["metrics"]).toMatchObject({
      lookups: { total: 0, by_source: {} },
      cache_age_seconds: expect.any(Number),
    });
    expect(json["cache"]).toMatchObject({
      path: cachePath,
      mode: "0600",
      tag_backend: "keyfile",
      stale_after_seconds: expect.any(Number),
      entries: 1,
    });
    expect(json["cache"]?.["last_written"]).toMatch(/^\d{4}-\d\d-\d\dT/);
    // Podman is not reachable: no counts, an error instead.
    expect(Object.keys(json["drift"] ?? {})).toEqual(["podman_socket", "reachable", "error"]);
    expect(json["warnings"]).toEqual([
      expect.objectContaining({ component: "drift", code: "drift.unavailable" }),
    ]);
  });
});

describe("the cache verdict", () => {
  it("says unreadable for another backend's header, no-backend, and off when disabled", async () => {
    const text = await readFile(configPath, "utf8");
    await writeFile(configPath, text.replace("backend: keyfile", "backend: tpm"));
    const uid = process.getuid!();
    const other = await loadConfig({ path: configPath, env, uid });
    const mismatched = await collectStatus({ loaded: other, env, uid, socket });
    expect(mismatched.cache).toMatchObject({ mismatch: true, state: "unreadable" });
    await writeFile(configPath, text.replace("enabled: true", "enabled: false"));
    const off = await loadConfig({ path: configPath, env, uid });
    expect((await collectStatus({ loaded: off, env, uid, socket })).cache.state).toBe("off");
    await writeFile(configPath, text.replace("backend: keyfile, ", ""));
    const none = await loadConfig({ path: configPath, env, uid });
    expect((await collectStatus({ loaded: none, env, uid, socket })).cache.state).toBe(
      "no-backend",
    );
  });
});
