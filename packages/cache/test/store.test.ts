import { randomBytes } from "node:crypto";
import { copyFile, link, mkdir, readFile, rename, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { aesGcmBackend, type CacheCipher } from "@psi/envelope";
import { tempDir } from "@psi/testkit/tmp";
import { captureLogger } from "@psi/testkit/unix-http";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createCacheStore, saveCache } from "../src/index.js";
import { copyVector, manifest, tpmVectorCipher, VECTORS } from "./helpers.js";

const mapping = (key: string) => ({ provider: "infisical", project: "p", path: "/app", key });

/** The real cipher, counting decryptions (to show what reads the file and what does not). */
function counting(cipher: CacheCipher): CacheCipher & { decrypts: number } {
  const counted = {
    tag: cipher.tag,
    decrypts: 0,
    encrypt: (plaintext: Uint8Array) => cipher.encrypt(plaintext),
    decrypt: (payload: Uint8Array) => {
      counted.decrypts++;
      return cipher.decrypt(payload);
    },
  };
  return counted;
}

describe("createCacheStore", () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  let path: string;
  beforeEach(async () => {
    dir = await tempDir();
    path = join(dir.path, "cache.enc");
  });
  afterEach(() => dir.cleanup());

  it("loads the tpm vector once and answers every entry without decrypting again", async () => {
    await copyVector("tpm-cache.enc", dir.path);
    const backend = counting(await tpmVectorCipher());
    const store = createCacheStore({ path, backend, logger: captureLogger().logger });
    const stats = await store.load();
    const m = await manifest();
    expect(stats).toMatchObject({
      loaded: true,
      fileExists: true,
      fileEntries: m.entries.length,
      writtenAt: m.written_at,
      legacy: false,
    });
    for (const entry of m.entries) {
      const hit = store.lookup(entry.mapping);
      expect(hit?.source).toBe("file");
      expect(Buffer.from(hit!.value).toString("base64")).toBe(entry.value_b64);
    }
    expect(store.get(mapping("absent"))).toBeUndefined();
    expect(await store.reloadIfChanged()).toBe(false);
    expect(backend.decrypts).toBe(1);
  });

  it("reads a missing file as an empty cache", async () => {
    const store = createCacheStore({
      path,
      backend: await tpmVectorCipher(),
      logger: captureLogger().logger,
    });
    expect(await store.load()).toMatchObject({ loaded: true, fileExists: false, fileEntries: 0 });
    expect(await store.reloadIfChanged()).toBe(false);
  });

  it("loads a legacy version 1 file as empty", async () => {
    await copyVector("legacy-v1-cache.enc", dir.path);
    const store = createCacheStore({
      path,
      backend: await tpmVectorCipher(),
      logger: captureLogger().logger,
    });
    expect(await store.load()).toMatchObject({ loaded: true, legacy: true, fileEntries: 0 });
  });

  it("fails load with the envelope code and the path, and stays usable", async () => {
    await copyVector("tampered.enc", dir.path);
    const store = createCacheStore({
      path,
      backend: await tpmVectorCipher(),
      logger: captureLogger().logger,
    });
    await expect(store.load()).rejects.toMatchObject({
      code: "cache.auth_failed",
      message: expect.stringContaining(path),
    });
    expect(store.stats()).toMatchObject({
      loaded: false,
      lastError: "cache.auth_failed",
      fileEntries: 0,
    });
    // unchanged bad file: not retried on every lookup
    expect(await store.reloadIfChanged()).toBe(false);
  });

  it("reloads when setup replaces the file, and only then", async () => {
    const backend = counting(aesGcmBackend(randomBytes(32), 0x03));
    await saveCache({
      path,
      backend,
      fetched: [{ mapping: mapping("A"), value: Buffer.from("one") }],
      prune: true,
    });
    const log = captureLogger();
    const store = createCacheStore({ path, backend, logger: log.logger });
    await store.load();
    expect(store.get(mapping("A"))?.toString()).toBe("one");
    expect(await store.reloadIfChanged()).toBe(false);
    await saveCache({
      path,
      backend,
      fetched: [{ mapping: mapping("A"), value: Buffer.from("two") }],
      prune: true,
    });
    expect(await store.reloadIfChanged()).toBe(true);
    expect(store.get(mapping("A"))?.toString()).toBe("two");
    expect(await store.reloadIfChanged()).toBe(false);
    expect(log.records().filter((r) => r.event === "cache.reload")).toHaveLength(1);
    // deleted file: the values stay in memory (a provider outage must not empty the cache)
    await unlink(path);
    expect(await store.reloadIfChanged()).toBe(false);
    expect(store.get(mapping("A"))?.toString()).toBe("two");
    expect(log.records().find((r) => r.event === "cache.missing")).toMatchObject({
      level: "warn",
      entries: 1,
    });
    expect(store.stats()).toMatchObject({ fileExists: false, fileEntries: 1 });
  });

  it("shares one reload between concurrent callers", async () => {
    const backend = counting(aesGcmBackend(randomBytes(32), 0x03));
    await saveCache({
      path,
      backend,
      fetched: [{ mapping: mapping("A"), value: Buffer.from("one") }],
      prune: true,
    });
    const store = createCacheStore({ path, backend, logger: captureLogger().logger });
    await store.load();
    await saveCache({
      path,
      backend,
      fetched: [{ mapping: mapping("A"), value: Buffer.from("two") }],
      prune: true,
    });
    const before = backend.decrypts;
    const results = await Promise.all(Array.from({ length: 10 }, () => store.reloadIfChanged()));
    expect(results.filter(Boolean).length).toBeGreaterThanOrEqual(1);
    expect(backend.decrypts - before).toBe(1);
  });

  it("keeps the previous contents when a changed file cannot be read, and recovers", async () => {
    const backend = aesGcmBackend(randomBytes(32), 0x03);
    await saveCache({
      path,
      backend,
      fetched: [{ mapping: mapping("A"), value: Buffer.from("one") }],
      prune: true,
    });
    const log = captureLogger();
    const store = createCacheStore({ path, backend, logger: log.logger });
    await store.load();
    const bad = join(dir.path, "bad.enc");
    await copyFile(join(VECTORS, "bad-magic.enc"), bad);
    await rename(bad, path);
    expect(await store.reloadIfChanged()).toBe(false);
    expect(store.get(mapping("A"))?.toString()).toBe("one");
    const warning = log.records().find((r) => r.event === "cache.reload_failed");
    expect(warning).toMatchObject({ level: "warn", code: "cache.bad_magic" });
    expect(store.stats().lastError).toBe("cache.bad_magic");
    await saveCache({
      path,
      backend,
      previous: null,
      fetched: [{ mapping: mapping("A"), value: Buffer.from("three") }],
      prune: true,
    });
    expect(await store.reloadIfChanged()).toBe(true);
    expect(store.get(mapping("A"))?.toString()).toBe("three");
  });

  it("keeps live values across reloads; the file's copy wins once setup writes one", async () => {
    const backend = aesGcmBackend(randomBytes(32), 0x03);
    await saveCache({
      path,
      backend,
      fetched: [{ mapping: mapping("A"), value: Buffer.from("a") }],
      prune: true,
    });
    const store = createCacheStore({ path, backend, logger: captureLogger().logger });
    await store.load();
    store.remember(mapping("L"), Buffer.from("live"));
    store.remember(mapping("M"), Buffer.from("live-m"));
    expect(store.lookup(mapping("L"))).toMatchObject({ source: "memory" });
    await saveCache({
      path,
      backend,
      fetched: [
        { mapping: mapping("A"), value: Buffer.from("a2") },
        { mapping: mapping("M"), value: Buffer.from("from-setup") },
      ],
      prune: true,
    });
    expect(await store.reloadIfChanged()).toBe(true);
    expect(store.get(mapping("L"))?.toString()).toBe("live");
    expect(store.lookup(mapping("M"))).toMatchObject({ source: "file" });
    expect(store.get(mapping("M"))?.toString()).toBe("from-setup");
    expect(store.stats()).toMatchObject({ fileEntries: 2, memoryEntries: 1 });
    // serve never writes the file: live values are not in it
    const { readCacheFile } = await import("../src/index.js");
    expect((await readCacheFile({ path, backend }))!.entries.size).toBe(2);
  });

  it("with watch: a replaced file is noticed through inotify; close() goes back to a stat per call", async () => {
    const backend = counting(aesGcmBackend(randomBytes(32), 0x03));
    await saveCache({
      path,
      backend,
      fetched: [{ mapping: mapping("A"), value: Buffer.from("one") }],
      prune: true,
    });
    const store = createCacheStore({
      path,
      backend,
      logger: captureLogger().logger,
      watch: true,
      checkIntervalMs: 3_600_000,
    });
    await store.load();
    expect(await store.reloadIfChanged()).toBe(false);
    await saveCache({
      path,
      backend,
      fetched: [{ mapping: mapping("A"), value: Buffer.from("two") }],
      prune: true,
    });
    const deadline = Date.now() + 5000;
    while (!(await store.reloadIfChanged()) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 10));
    expect(store.get(mapping("A"))?.toString()).toBe("two");
    store.close();
    await saveCache({
      path,
      backend,
      fetched: [{ mapping: mapping("A"), value: Buffer.from("three") }],
      prune: true,
    });
    expect(await store.reloadIfChanged()).toBe(true);
    expect(store.get(mapping("A"))?.toString()).toBe("three");
  });

  it("with watch: a change inotify cannot see is picked up by the interval stat", async () => {
    const backend = counting(aesGcmBackend(randomBytes(32), 0x03));
    await saveCache({
      path,
      backend,
      fetched: [{ mapping: mapping("A"), value: Buffer.from("one") }],
      prune: true,
    });
    let clock = 0;
    const store = createCacheStore({
      path,
      backend,
      logger: captureLogger().logger,
      watch: true,
      checkIntervalMs: 1000,
      now: () => clock,
    });
    await store.load();
    expect(await store.reloadIfChanged()).toBe(false);
    // Rewrite the same inode through a hard link in another directory: the watch on the
    // cache's directory hears nothing, so only the interval stat can notice.
    const other = join(dir.path, "elsewhere");
    await mkdir(other);
    await link(path, join(other, "link.enc"));
    await saveCache({
      path: join(other, "new.enc"),
      backend,
      fetched: [{ mapping: mapping("A"), value: Buffer.from("two") }],
      prune: true,
    });
    await writeFile(join(other, "link.enc"), await readFile(join(other, "new.enc")));
    await new Promise((r) => setTimeout(r, 50));
    clock = 500;
    expect(await store.reloadIfChanged()).toBe(false);
    expect(store.get(mapping("A"))?.toString()).toBe("one");
    clock = 1500;
    expect(await store.reloadIfChanged()).toBe(true);
    expect(store.get(mapping("A"))?.toString()).toBe("two");
    store.close();
  });

  it("without a backend keeps only live values and never reads the file", async () => {
    await writeFile(path, "not a cache at all");
    const store = createCacheStore({ path, logger: captureLogger().logger });
    expect(await store.load()).toMatchObject({ backend: false, loaded: false });
    expect(await store.reloadIfChanged()).toBe(false);
    store.remember(mapping("A"), Buffer.from("x"));
    expect(store.lookup(mapping("A"))).toMatchObject({ source: "memory" });
  });

  it("keys by the canonical mapping: key order and unicode do not matter", async () => {
    const m = await manifest();
    await copyVector("tpm-cache.enc", dir.path);
    const store = createCacheStore({
      path,
      backend: await tpmVectorCipher(),
      logger: captureLogger().logger,
    });
    await store.load();
    const entry = m.entries[2]!;
    const reordered = Object.fromEntries(Object.entries(entry.mapping).reverse());
    expect(Buffer.from(store.get(reordered)!).toString("base64")).toBe(entry.value_b64);
  });
});
