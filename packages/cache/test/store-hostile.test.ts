import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  copyFile,
  mkdir,
  readdir,
  symlink,
  truncate,
  unlink,
  utimes,
  writeFile,
} from "node:fs/promises";
import { join } from "node:path";
import { aesKeyBackend, readRegularFile, writeFileAtomic } from "@psi/core";
import { aesGcmBackend, type CacheCipher } from "@psi/envelope";
import { tempDir } from "@psi/testkit/tmp";
import { captureLogger } from "@psi/testkit/unix-http";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  CACHE_FILE_MAX_BYTES,
  createCacheStore,
  readCacheFile,
  readCacheStatus,
  STALE_TEMP_MS,
  saveCache,
  writeCacheFile,
} from "../src/index.js";

// Hostile things in place of cache.enc (SPEC §13 "Reliability and security"): real FIFOs,
// symlinks to devices, sparse files and directories, and what serve's store does with them.

const mapping = (key: string) => ({ provider: "infisical", project: "p", path: "/app", key });

/** The real cipher, whose decryptions wait until the test opens the gate. */
function gated(cipher: CacheCipher): CacheCipher & { open(): void; waiting: Promise<void> } {
  let release: () => void = () => {};
  let entered: () => void = () => {};
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  const waiting = new Promise<void>((resolve) => {
    entered = resolve;
  });
  return {
    tag: cipher.tag,
    encrypt: (plaintext) => cipher.encrypt(plaintext),
    async decrypt(payload) {
      entered();
      await gate;
      return cipher.decrypt(payload);
    },
    open: () => release(),
    waiting,
  };
}

let dir: { path: string; cleanup: () => Promise<void> };
let path: string;
let backend: CacheCipher;
beforeEach(async () => {
  dir = await tempDir("psi-store-hostile-");
  path = join(dir.path, "cache.enc");
  backend = aesGcmBackend(randomBytes(32), 0x03);
});
afterEach(() => dir.cleanup());

async function save(value: string, writtenAt?: number, cipher = backend): Promise<void> {
  await saveCache({
    path,
    backend: cipher,
    previous: null,
    fetched: [{ mapping: mapping("A"), value: Buffer.from(value) }],
    prune: true,
    ...(writtenAt === undefined ? {} : { now: () => writtenAt * 1000 }),
  });
}

async function loadedStore(value: string, options: { reloadTimeoutMs?: number } = {}) {
  await save(value);
  const log = captureLogger();
  const store = createCacheStore({ path, backend, logger: log.logger, ...options });
  await store.load();
  expect(store.get(mapping("A"))?.toString()).toBe(value);
  return { store, log };
}

describe("cache store: hostile files in place of cache.enc", () => {
  const cases: Array<[string, () => Promise<void>, string]> = [
    [
      "a FIFO",
      async () => {
        execFileSync("mkfifo", [path]);
      },
      "fs.not_regular",
    ],
    ["a symlink to /dev/zero", () => symlink("/dev/zero", path), "fs.symlink"],
    [
      "a sparse 2 GB file",
      async () => {
        await writeFile(path, "");
        await truncate(path, 2 * 1024 ** 3);
      },
      "fs.too_large",
    ],
    ["a directory", () => mkdir(path), "fs.not_regular"],
  ];
  for (const [what, plant, code] of cases) {
    it(`${what}: warning, the old contents stay, a good file recovers`, async () => {
      const { store, log } = await loadedStore("one");
      await unlink(path);
      await plant();
      // Never blocks (a FIFO without a writer, /dev/zero) and never reads 2 GB.
      expect(await store.reloadIfChanged()).toBe(false);
      expect(store.get(mapping("A"))?.toString()).toBe("one");
      const warning = log.records().find((r) => r.event === "cache.reload_failed");
      expect(warning).toMatchObject({ level: "warn", code });
      expect(String(warning?.["error"])).toContain(path);
      expect(store.stats()).toMatchObject({ lastError: code, degraded: undefined });
      // unchanged: not retried on every lookup
      expect(await store.reloadIfChanged()).toBe(false);
      expect(log.records().filter((r) => r.event === "cache.reload_failed")).toHaveLength(1);
      // putting a good file back recovers
      const { rm } = await import("node:fs/promises");
      await rm(path, { recursive: true });
      await save("two");
      expect(await store.reloadIfChanged()).toBe(true);
      expect(store.get(mapping("A"))?.toString()).toBe("two");
      expect(store.stats().lastError).toBeUndefined();
    });
  }

  it("readCacheFile and readCacheStatus refuse a FIFO without blocking", async () => {
    execFileSync("mkfifo", [path]);
    await expect(readCacheFile({ path, backend })).rejects.toMatchObject({
      code: "fs.not_regular",
      message: expect.stringContaining("is a FIFO"),
    });
    expect((await readCacheStatus(path)).error).toMatchObject({ code: "fs.not_regular" });
  });

  it("refuses a file over the documented cap before reading it", async () => {
    await writeFile(path, "");
    await truncate(path, CACHE_FILE_MAX_BYTES + 1);
    await expect(readCacheFile({ path, backend })).rejects.toMatchObject({
      code: "fs.too_large",
    });
  });
});

describe("cache store: reloads never hold up lookups", () => {
  it("keeps answering during a slow reload, and swaps in one step when it ends", async () => {
    await save("one");
    let gate = gated(backend);
    let current: CacheCipher = backend;
    const switching: CacheCipher = {
      tag: backend.tag,
      encrypt: (p) => current.encrypt(p),
      decrypt: (p) => current.decrypt(p),
    };
    const store = createCacheStore({ path, backend: switching, logger: captureLogger().logger });
    await store.load();
    current = gate;
    await save("two");
    const reload = store.reloadIfChanged();
    await gate.waiting;
    // the reload is in progress: every lookup answers at once from the old contents
    for (let i = 0; i < 100; i++) expect(store.get(mapping("A"))?.toString()).toBe("one");
    expect(await Promise.race([reload, Promise.resolve("pending")])).toBe("pending");
    gate.open();
    expect(await reload).toBe(true);
    expect(store.get(mapping("A"))?.toString()).toBe("two");
    // a reload that never ends is abandoned after reloadTimeoutMs, with a warning
    gate = gated(backend);
    current = gate;
    const log = captureLogger();
    const bounded = createCacheStore({
      path,
      backend: switching,
      logger: log.logger,
      reloadTimeoutMs: 200,
    });
    current = backend;
    await bounded.load();
    current = gate;
    await save("three");
    expect(await bounded.reloadIfChanged()).toBe(false);
    expect(bounded.get(mapping("A"))?.toString()).toBe("two");
    expect(log.records().find((r) => r.event === "cache.reload_failed")).toMatchObject({
      level: "warn",
      code: "cache.reload_timeout",
    });
    // the stuck read finishing late changes nothing; the next change is read again
    gate.open();
    await new Promise((r) => setImmediate(r));
    expect(bounded.get(mapping("A"))?.toString()).toBe("two");
    current = backend;
    await save("four");
    expect(await bounded.reloadIfChanged()).toBe(true);
    expect(bounded.get(mapping("A"))?.toString()).toBe("four");
  });
});

describe("cache store: missing file, rollback, key change", () => {
  it("keeps the values in memory when cache.enc is deleted, and reads it when it is back", async () => {
    const { store, log } = await loadedStore("one");
    await unlink(path);
    expect(await store.reloadIfChanged()).toBe(false);
    expect(store.get(mapping("A"))?.toString()).toBe("one");
    expect(log.records().find((r) => r.event === "cache.missing")).toMatchObject({
      level: "warn",
      entries: 1,
    });
    await save("two");
    expect(await store.reloadIfChanged()).toBe(true);
    expect(store.get(mapping("A"))?.toString()).toBe("two");
  });

  it("refuses a file whose written_at is older than the loaded one; a restart loads it", async () => {
    await save("old", 1_700_000_000);
    const oldCopy = join(dir.path, "old.enc");
    await copyFile(path, oldCopy);
    await save("new", 1_700_000_600);
    const log = captureLogger();
    const store = createCacheStore({ path, backend, logger: log.logger });
    await store.load();
    await copyFile(oldCopy, join(dir.path, "put-back.enc"));
    const { rename } = await import("node:fs/promises");
    await rename(join(dir.path, "put-back.enc"), path);
    expect(await store.reloadIfChanged()).toBe(false);
    expect(store.get(mapping("A"))?.toString()).toBe("new");
    const warning = log.records().find((r) => r.event === "cache.reload_failed");
    expect(warning).toMatchObject({
      level: "warn",
      code: "cache.rollback",
      written_at: 1_700_000_000,
      loaded_written_at: 1_700_000_600,
    });
    expect(String(warning?.["hint"])).toContain("restart");
    // also after the file was deleted in between (the values in memory still count)
    await unlink(path);
    expect(await store.reloadIfChanged()).toBe(false);
    await copyFile(oldCopy, path);
    expect(await store.reloadIfChanged()).toBe(false);
    expect(store.get(mapping("A"))?.toString()).toBe("new");
    // the same second is no rollback (two saves within one second)
    await save("same-second", 1_700_000_600);
    expect(await store.reloadIfChanged()).toBe(true);
    // rolling back on purpose: a fresh store (a restarted serve) loads whatever is there
    await copyFile(oldCopy, path);
    const restarted = createCacheStore({ path, backend, logger: captureLogger().logger });
    await restarted.load();
    expect(restarted.get(mapping("A"))?.toString()).toBe("old");
  });

  it("re-reads a changed keyfile key; without a way to, reports itself degraded", async () => {
    // core's AES key backend reading a key file: what the keyfile and tpm backends are
    const keyPath = join(dir.path, "cache.keyfile");
    const newKey = () => writeFileAtomic(keyPath, randomBytes(32), { mode: 0o600 });
    const fromFile = () =>
      aesKeyBackend({
        name: "keyfile",
        tag: 0x03,
        loadKey: () => readRegularFile(keyPath, { maxBytes: 32 }),
      });
    await newKey();
    const keyfile = fromFile();
    await keyfile.open();
    await save("one", undefined, keyfile);
    const log = captureLogger();
    const store = createCacheStore({
      path,
      backend: keyfile,
      logger: log.logger,
      reloadKey: () => keyfile.reloadKey!(),
    });
    await store.load();
    // psi cache init --backend keyfile --force, then setup with the new key
    await newKey();
    const fresh = fromFile();
    await fresh.open();
    await save("two", undefined, fresh);
    expect(await store.reloadIfChanged()).toBe(true);
    expect(store.get(mapping("A"))?.toString()).toBe("two");
    expect(store.stats().degraded).toBeUndefined();
    // a file written with a key that is nowhere on disk: degraded, old values served
    await save("three", undefined, aesGcmBackend(randomBytes(32), 0x03));
    expect(await store.reloadIfChanged()).toBe(false);
    expect(store.get(mapping("A"))?.toString()).toBe("two");
    expect(store.stats().degraded).toMatch(/^cache\.auth_failed: /);
    expect(log.records().find((r) => r.degraded === true)).toMatchObject({
      level: "warn",
      code: "cache.auth_failed",
    });
    // a good file again: healthy
    await save("four", undefined, fresh);
    expect(await store.reloadIfChanged()).toBe(true);
    expect(store.stats().degraded).toBeUndefined();
    await keyfile.close();
    await fresh.close();
  });

  it("a file of another backend (tag mismatch) is degraded too", async () => {
    const { store } = await loadedStore("one");
    await save("tpm", undefined, aesGcmBackend(randomBytes(32), 0x01));
    expect(await store.reloadIfChanged()).toBe(false);
    expect(store.stats().degraded).toMatch(/^cache\.tag_mismatch: /);
    expect(store.get(mapping("A"))?.toString()).toBe("one");
  });
});

describe("cache saves sweep temp files of killed writers", () => {
  it("removes temp files older than STALE_TEMP_MS on every save, keeps younger ones", async () => {
    const stale = join(dir.path, ".psi-00112233445566aa.tmp");
    const young = join(dir.path, ".psi-00112233445566bb.tmp");
    const other = join(dir.path, ".not-ours.tmp");
    for (const file of [stale, young, other]) await writeFile(file, "partial", { mode: 0o600 });
    const past = (Date.now() - STALE_TEMP_MS - 60_000) / 1000;
    await utimes(stale, past, past);
    await utimes(other, past, past);
    const recent = (Date.now() - STALE_TEMP_MS / 2) / 1000;
    await utimes(young, recent, recent);
    // writeCacheFile is what psi cache init and psi cache invalidate save with
    await writeCacheFile({
      path,
      backend,
      contents: { hmacKey: randomBytes(32), entries: new Map() },
    });
    expect((await readdir(dir.path)).sort()).toEqual(
      [".not-ours.tmp", ".psi-00112233445566bb.tmp", "cache.enc"].sort(),
    );
  });
});
