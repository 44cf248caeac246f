import { mkdir, readFile, rm, stat, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { readCacheFile, saveCache } from "@psi/cache";
import { createKeyfileCacheBackend } from "@psi/cache-keyfile";
import { infisicalMappingBytes, isPsiError, loadConfig, parseMapping } from "@psi/core";
import { tempDir } from "@psi/testkit/tmp";
import { captureLogger } from "@psi/testkit/unix-http";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  cacheLocations,
  cacheStatus,
  cacheStatusJson,
  initCache,
  initHostCache,
  invalidateCache,
  invalidateHostCache,
  invalidateResultJson,
  resolveInvalidateTargets,
} from "../src/index.js";

// The cache operations as a frontend calls them, on real files with the keyfile backend.

let dir: { path: string; cleanup: () => Promise<void> };
let configPath: string;
let stateDir: string;
let keyFile: string;
const env: Record<string, string> = {};
const uid = process.getuid!();

const IDS = ["a1b2c3d4e5f6a7b8c9d0e1f2a", "b1b2c3d4e5f6a7b8c9d0e1f2b"];
const MAPPINGS = IDS.map((_, i) =>
  infisicalMappingBytes({ project: "proj", path: "/app", key: `K${i}` }),
);

beforeEach(async () => {
  dir = await tempDir("psi-ops-cache-");
  stateDir = join(dir.path, "state");
  keyFile = join(dir.path, "cache.keyfile");
  configPath = join(dir.path, "config.yaml");
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  env["HOME"] = dir.path;
  await writeFile(
    configPath,
    `state_dir: ${stateDir}\ncache: { enabled: true, backend: keyfile, key_file: ${keyFile} }\n`,
  );
});

afterEach(async () => {
  await dir.cleanup();
});

async function where() {
  return cacheLocations(await loadConfig({ path: configPath, env, uid }), { env, uid });
}

async function initKeyfile() {
  const { logger } = captureLogger("warn");
  return initCache({ backend: "keyfile", where: await where(), env, logger });
}

describe("initCache", () => {
  it("writes a 0600 key and an empty cache the backend reads", async () => {
    const result = await initKeyfile();
    expect(result).toMatchObject({ backend: "keyfile", keyPath: keyFile, publicKey: false });
    expect(result.notes).toEqual([]);
    expect((await stat(keyFile)).mode & 0o777).toBe(0o600);
    const backend = createKeyfileCacheBackend({ path: keyFile });
    await backend.open();
    const decoded = await readCacheFile({ path: result.cachePath, backend });
    await backend.close();
    expect(decoded?.entries.size).toBe(0);
  });

  it("refuses an unknown backend and writes nothing", async () => {
    const { logger } = captureLogger("warn");
    const error = await initCache({ backend: "nope", where: await where(), env, logger }).catch(
      (e: unknown) => e,
    );
    expect(isPsiError(error, "cache.unknown_backend")).toBe(true);
    await expect(stat(join(stateDir, "cache.enc"))).rejects.toThrow();
  });

  it("notes a backend that differs from the configuration", async () => {
    await writeFile(configPath, `state_dir: ${stateDir}\ncache: { backend: tpm }\n`);
    const { logger } = captureLogger("warn");
    const result = await initCache({
      backend: "keyfile",
      where: await where(),
      env,
      logger,
      keyPath: join(dir.path, "elsewhere.keyfile"),
    });
    expect(result.notes).toEqual([
      `set cache.key_file: ${join(dir.path, "elsewhere.keyfile")} in the configuration so psi finds the key`,
      `set cache.backend: keyfile in ${configPath} (it is tpm)`,
    ]);
  });
});

describe("cacheStatus", () => {
  it("reads the header without the key, and verifies with it", async () => {
    await initKeyfile();
    const backend = () => Promise.resolve(createKeyfileCacheBackend({ path: keyFile }));
    const plain = await cacheStatus(await where());
    expect(plain).toMatchObject({ ok: true, mismatch: false, tagBackend: "keyfile" });
    expect(plain.verify).toBeUndefined();
    // Its age at a given time, from the file's mtime; a clock behind the file reads 0.
    const written = new Date("2026-01-01T00:00:00Z");
    await utimes(join(stateDir, "cache.enc"), written, written);
    const location = await where();
    const at = (nowMs: number) => cacheStatus(location, undefined, { nowMs });
    expect((await at(written.getTime() + 90_400)).ageSeconds).toBe(90);
    expect((await at(written.getTime() - 5_000)).ageSeconds).toBe(0);
    const verified = await cacheStatus(await where(), backend);
    expect(verified.verify).toMatchObject({ ok: true, entries: 0 });
  });

  it("has a machine form: snake_case, nulls for the unknown, the mode in octal", async () => {
    const missing = await cacheStatus(await where());
    expect(missing).not.toHaveProperty("ageSeconds");
    const absent = cacheStatusJson(missing);
    expect(absent).toMatchObject({ exists: false, size: null, mode: null, tag_backend: null });
    expect(absent).not.toHaveProperty("verify");
    await initKeyfile();
    const json = cacheStatusJson(await cacheStatus(await where()));
    expect(json).toMatchObject({ exists: true, mode: "0600", tag: 3, tag_backend: "keyfile" });
    expect(json["last_written"]).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(Object.keys(json)).toEqual([
      ...["path", "config", "enabled", "backend", "exists", "size", "mode", "last_written"],
      ...["version", "tag", "tag_backend", "mismatch"],
    ]);
  });

  it("reports a header from another backend as a mismatch", async () => {
    await initKeyfile();
    await writeFile(configPath, `state_dir: ${stateDir}\ncache: { backend: tpm }\n`);
    const report = await cacheStatus(await where());
    expect(report).toMatchObject({ ok: false, mismatch: true, tagBackend: "keyfile" });
  });

  it("reports a key that does not open the file as a failed verification", async () => {
    await initKeyfile();
    const other = join(dir.path, "other.keyfile");
    await writeFile(other, Buffer.alloc(32, 7), { mode: 0o600 });
    const report = await cacheStatus(await where(), async () =>
      createKeyfileCacheBackend({ path: other }),
    );
    expect(report.ok).toBe(false);
    expect(report.verify?.ok).toBe(false);
    expect(report.verify?.error?.code).toMatch(/^cache\./);
  });
});

describe("invalidate", () => {
  async function populate() {
    const { cachePath } = await initKeyfile();
    for (const [i, id] of IDS.entries()) {
      await writeFile(join(stateDir, id), MAPPINGS[i]!, { mode: 0o600 });
    }
    const backend = createKeyfileCacheBackend({ path: keyFile });
    await backend.open();
    const previous = await readCacheFile({ path: cachePath, backend });
    await saveCache({
      path: cachePath,
      backend,
      previous: previous ?? null,
      prune: true,
      fetched: MAPPINGS.map((m, i) => ({ mapping: parseMapping(m), value: Buffer.from(`v${i}`) })),
    });
    await backend.close();
    return cachePath;
  }

  const noPodman = async () => {
    throw new Error("Podman must not be asked for secret IDs");
  };

  it("resolves secret IDs from their mapping files and drops only their entries", async () => {
    const path = await populate();
    const targets = await resolveInvalidateTargets({
      targets: [IDS[1]!],
      stateDir,
      env,
      podmanScope: noPodman,
    });
    expect(targets).toEqual([{ target: IDS[1], id: IDS[1], mapping: parseMapping(MAPPINGS[1]!) }]);
    const before = await readFile(path);
    const result = await invalidateCache({
      path,
      backend: createKeyfileCacheBackend({ path: keyFile }),
      targets,
    });
    expect(result.removed.map((r) => r.removed)).toEqual([true]);
    expect(result.entries).toBe(1);
    expect(await readFile(path)).not.toEqual(before);
    const again = await invalidateCache({
      path,
      backend: createKeyfileCacheBackend({ path: keyFile }),
      targets,
    });
    expect(again.removed.map((r) => r.removed)).toEqual([false]);
  });

  it("drops every entry with all", async () => {
    const path = await populate();
    const result = await invalidateCache({
      path,
      backend: createKeyfileCacheBackend({ path: keyFile }),
      targets: "all",
    });
    expect(result).toMatchObject({ exists: true, removedAll: 2, entries: 0 });
  });

  it("names the target that is neither an ID nor reachable through Podman", async () => {
    await populate();
    const error = await resolveInvalidateTargets({
      targets: ["app--K0"],
      stateDir,
      env,
      podmanSocket: join(dir.path, "no-podman.sock"),
      podmanScope: async () => ({ scope: "user", defaultSocket: join(dir.path, "x.sock") }),
    }).catch((e: unknown) => e);
    expect(isPsiError(error, "cache.invalidate_unresolved")).toBe(true);
    expect((error as Error).message).toContain('"app--K0"');
  });

  it("refuses to rewrite without a backend", async () => {
    const error = await invalidateCache({
      path: join(stateDir, "cache.enc"),
      backend: undefined,
      targets: "all",
    }).catch((e: unknown) => e);
    expect(isPsiError(error, "cache.no_backend")).toBe(true);
  });
});

describe("initHostCache", () => {
  it("asks for the backend, then checks its name before reading the configuration", async () => {
    const { logger } = captureLogger("warn");
    let read = 0;
    const config = async () => {
      read++;
      return loadConfig({ path: configPath, env, uid });
    };
    const missing = await initHostCache({ backend: undefined, config, env, uid, logger }).catch(
      (e: unknown) => e,
    );
    expect(isPsiError(missing, "cache.backend_required")).toBe(true);
    expect((missing as Error).message).toContain("keyfile");
    const typo = await initHostCache({ backend: "keyfiel", config, env, uid, logger }).catch(
      (e: unknown) => e,
    );
    expect(isPsiError(typo, "cache.unknown_backend")).toBe(true);
    expect(read).toBe(0);
    await expect(stat(join(stateDir, "cache.enc"))).rejects.toThrow();
  });

  it("provisions where the configuration says, or the scope's defaults without one", async () => {
    const { logger } = captureLogger("warn");
    const configured = await initHostCache({
      backend: "keyfile",
      config: () => loadConfig({ path: configPath, env, uid }),
      env,
      uid,
      logger,
    });
    expect(configured).toMatchObject({ keyPath: keyFile, cachePath: join(stateDir, "cache.enc") });

    const home = join(dir.path, "bare");
    const bare = {
      HOME: home,
      XDG_CONFIG_HOME: join(home, "config"),
      XDG_STATE_HOME: join(home, "state"),
    };
    // The user scope (uid 1000): as root the scope's defaults are /etc/psi, and a test
    // must never write outside its temporary directory.
    const defaults = await initHostCache({
      backend: "keyfile",
      config: async () => undefined,
      env: bare,
      uid: 1000,
      logger,
    });
    const expected = cacheLocations(undefined, { env: bare, uid: 1000 });
    expect(expected.keyFile.startsWith(home)).toBe(true);
    expect(defaults).toMatchObject({ keyPath: expected.keyFile, cachePath: expected.cachePath });
    expect(defaults.notes).toEqual([
      "create the configuration with cache: { backend: keyfile } so psi uses it",
    ]);
    expect((await stat(expected.keyFile)).mode & 0o777).toBe(0o600);
  });
});

describe("invalidateHostCache", () => {
  it("resolves IDs in state_dir and drops their entries; all drops every entry", async () => {
    await initKeyfile();
    for (const [i, id] of IDS.entries()) {
      await writeFile(join(stateDir, id), MAPPINGS[i]!, { mode: 0o600 });
    }
    const backend = createKeyfileCacheBackend({ path: keyFile });
    await backend.open();
    const path = join(stateDir, "cache.enc");
    await saveCache({
      path,
      backend,
      previous: (await readCacheFile({ path, backend })) ?? null,
      prune: true,
      fetched: MAPPINGS.map((m, i) => ({ mapping: parseMapping(m), value: Buffer.from(`v${i}`) })),
    });
    await backend.close();
    const options = {
      where: await where(),
      env,
      podmanScope: async () => {
        throw new Error("Podman must not be asked for secret IDs");
      },
      backend: async () => createKeyfileCacheBackend({ path: keyFile }),
    };
    const one = await invalidateHostCache({ ...options, targets: [IDS[0]!] });
    expect(one.removed.map((r) => [r.id, r.removed])).toEqual([[IDS[0], true]]);
    expect(one.entries).toBe(1);
    // The JSON names each target's provider, never its mapping.
    expect(invalidateResultJson(one)).toEqual({
      path,
      exists: true,
      removed: [{ target: IDS[0], id: IDS[0], provider: "infisical", removed: true }],
      entries: 1,
    });
    const all = await invalidateHostCache({ ...options, targets: "all" });
    expect(all).toMatchObject({ exists: true, removedAll: 1, entries: 0 });
    expect(invalidateResultJson(all)).toEqual({
      path,
      exists: true,
      all: true,
      removed_count: 1,
      removed: [],
      entries: 0,
    });
    await rm(path);
    const none = await invalidateHostCache({ ...options, targets: "all" });
    expect(invalidateResultJson(none)).toEqual({ path, exists: false, removed: [], entries: 0 });
  });

  it("an unresolvable name fails before the cache is opened", async () => {
    let opened = false;
    const error = await invalidateHostCache({
      where: await where(),
      env,
      targets: ["app--K0"],
      podmanSocket: join(dir.path, "no-podman.sock"),
      podmanScope: async () => ({ scope: "user", defaultSocket: join(dir.path, "x.sock") }),
      backend: async () => {
        opened = true;
        return createKeyfileCacheBackend({ path: keyFile });
      },
    }).catch((e: unknown) => e);
    expect(isPsiError(error, "cache.invalidate_unresolved")).toBe(true);
    expect(opened).toBe(false);
  });
});
