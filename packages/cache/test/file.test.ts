import { randomBytes } from "node:crypto";
import { readdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { isPsiError } from "@psi/core";
import { aesGcmBackend, cacheKey, readHeader } from "@psi/envelope";
import { tempDir } from "@psi/testkit/tmp";
import { captureLogger } from "@psi/testkit/unix-http";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { prepareCacheSave, readCacheFile, saveCache } from "../src/index.js";
import { copyVector, manifest, tpmVectorCipher } from "./helpers.js";

const keyfileCipher = () => aesGcmBackend(randomBytes(32), 0x03);
const mapping = (key: string) => ({ provider: "infisical", project: "p", path: "/app", key });
const value = (text: string) => Buffer.from(text);

describe("saveCache", () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  let path: string;
  beforeEach(async () => {
    dir = await tempDir();
    path = join(dir.path, "cache.enc");
  });
  afterEach(() => dir.cleanup());

  it("writes a fresh file 0600 that reads back, with a new HMAC key", async () => {
    const backend = keyfileCipher();
    const result = await saveCache({
      path,
      backend,
      fetched: [
        { mapping: mapping("A"), value: value("alpha") },
        { mapping: mapping("B"), value: value("beta") },
      ],
      prune: true,
      now: () => 1_700_000_000_500,
    });
    expect(result).toMatchObject({
      entries: 2,
      added: 2,
      updated: 0,
      pruned: 0,
      freshHmacKey: true,
      writtenAt: 1_700_000_000,
    });
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    const bytes = await readFile(path);
    expect(readHeader(bytes).tag).toBe(0x03);
    const read = await readCacheFile({ path, backend });
    expect(read?.writtenAt).toBe(1_700_000_000);
    expect(read?.entries.get(cacheKey(read.hmacKey, mapping("A")))?.toString()).toBe("alpha");
    // no plaintext on disk, no temp file left behind
    expect(bytes.includes(Buffer.from("alpha"))).toBe(false);
    expect(await readdir(dir.path)).toEqual(["cache.enc"]);
  });

  it("saves from a prepared save: the previous file's HMAC key, keys computed once per mapping", async () => {
    const backend = keyfileCipher();
    // No file yet: the prepared save draws the key the new file will carry.
    const fresh = await prepareCacheSave({ path, backend });
    expect(fresh.previous).toBeNull();
    const a = mapping("A");
    expect(fresh.keyOf(a)).toBe(cacheKey(fresh.hmacKey, a));
    expect(fresh.keyOf(a)).toBe(fresh.keyOf(a));
    await saveCache({
      path,
      backend,
      prepared: fresh,
      prune: true,
      fetched: [{ mapping: a, value: value("alpha") }],
    });
    const first = await readCacheFile({ path, backend });
    expect(Buffer.from(first!.hmacKey).equals(Buffer.from(fresh.hmacKey))).toBe(true);
    expect(first!.entries.get(fresh.keyOf(a))?.toString()).toBe("alpha");

    // With a file: its HMAC key, so setup can key secrets while it is still fetching.
    const next = await prepareCacheSave({ path, backend });
    expect(Buffer.from(next.hmacKey).equals(Buffer.from(first!.hmacKey))).toBe(true);
    const b = mapping("B");
    next.keyOf(b);
    const result = await saveCache({
      path,
      backend,
      prepared: next,
      prune: true,
      fetched: [
        { mapping: a, value: value("alpha") },
        { mapping: b, value: value("beta") },
      ],
    });
    expect(result).toMatchObject({ entries: 2, added: 1, unchanged: 1, freshHmacKey: false });
    const second = await readCacheFile({ path, backend });
    expect(second!.entries.get(cacheKey(second!.hmacKey, b))?.toString()).toBe("beta");
  });

  it("reuses the HMAC key and adds/updates without pruning on a partial run", async () => {
    const backend = keyfileCipher();
    await saveCache({
      path,
      backend,
      fetched: [
        { mapping: mapping("A"), value: value("alpha") },
        { mapping: mapping("B"), value: value("beta") },
      ],
      prune: true,
    });
    const before = await readCacheFile({ path, backend });
    const result = await saveCache({
      path,
      backend,
      fetched: [
        { mapping: mapping("B"), value: value("beta") },
        { mapping: mapping("C"), value: value("gamma") },
        { mapping: mapping("A"), value: value("alpha-2") },
      ],
      prune: false,
    });
    expect(result).toMatchObject({
      entries: 3,
      added: 1,
      updated: 1,
      unchanged: 1,
      pruned: 0,
      freshHmacKey: false,
    });
    const after = await readCacheFile({ path, backend });
    expect(Buffer.compare(after!.hmacKey, before!.hmacKey)).toBe(0);
    expect(after!.entries.get(cacheKey(after!.hmacKey, mapping("A")))?.toString()).toBe("alpha-2");
  });

  it("prunes to exactly the fetched set on a full run", async () => {
    const backend = keyfileCipher();
    await saveCache({
      path,
      backend,
      fetched: ["A", "B", "C"].map((k) => ({ mapping: mapping(k), value: value(k) })),
      prune: true,
    });
    const result = await saveCache({
      path,
      backend,
      fetched: [{ mapping: mapping("B"), value: value("B") }],
      prune: true,
    });
    expect(result).toMatchObject({ entries: 1, pruned: 2, unchanged: 1 });
    const read = await readCacheFile({ path, backend });
    expect([...read!.entries.keys()]).toEqual([cacheKey(read!.hmacKey, mapping("B"))]);
  });

  it("counts a mapping fetched twice once (its first value), and writes the last", async () => {
    const backend = keyfileCipher();
    await saveCache({
      path,
      backend,
      fetched: ["A", "B", "C"].map((k) => ({ mapping: mapping(k), value: value(k) })),
      prune: true,
    });
    // Two workloads sharing a source: the same mapping arrives twice, as distinct objects.
    const twice = [
      { mapping: mapping("A"), value: value("A") },
      { mapping: mapping("D"), value: value("D") },
      { mapping: mapping("A"), value: value("A2") },
      { mapping: mapping("D"), value: value("D2") },
    ];
    for (const prune of [true, false]) {
      const result = await saveCache({ path, backend, fetched: twice, prune });
      expect(result).toMatchObject(
        prune
          ? { entries: 2, added: 1, unchanged: 1, updated: 0, pruned: 2 }
          : { entries: 2, added: 0, unchanged: 0, updated: 2, pruned: 0 },
      );
      const read = await readCacheFile({ path, backend });
      expect(read!.entries.get(cacheKey(read!.hmacKey, mapping("A")))?.toString()).toBe("A2");
      expect(read!.entries.get(cacheKey(read!.hmacKey, mapping("D")))?.toString()).toBe("D2");
    }
  });

  it("keeps the entries of a previous file given by the caller (the vectors)", async () => {
    const backend = await tpmVectorCipher();
    const source = await copyVector("tpm-cache.enc", dir.path, "vector.enc");
    const previous = await readCacheFile({ path: source, backend });
    const m = await manifest();
    expect(Buffer.from(previous!.hmacKey).toString("base64")).toBe(m.hmac_key_b64);
    await saveCache({
      path,
      backend,
      previous,
      fetched: [{ mapping: mapping("new"), value: value("n") }],
      prune: false,
    });
    const read = await readCacheFile({ path, backend });
    expect(read!.entries.size).toBe(m.entries.length + 1);
    for (const entry of m.entries) {
      expect(Buffer.from(read!.entries.get(entry.cache_key)!).toString("base64")).toBe(
        entry.value_b64,
      );
    }
  });

  it("warns and starts fresh when the existing file is unreadable", async () => {
    await copyVector("tampered.enc", dir.path);
    const backend = await tpmVectorCipher();
    const log = captureLogger();
    const result = await saveCache({
      path,
      backend,
      fetched: [{ mapping: mapping("A"), value: value("a") }],
      prune: false,
      logger: log.logger,
    });
    expect(result.freshHmacKey).toBe(true);
    expect(result.previousError?.code).toBe("cache.auth_failed");
    expect(result.entries).toBe(1);
    const warning = log.records().find((r) => r.event === "cache.previous_unreadable");
    expect(warning?.level).toBe("warn");
    expect(String(warning?.["error"])).toContain(path);
    expect((await readCacheFile({ path, backend }))!.entries.size).toBe(1);
  });

  it("starts fresh from a legacy (version 1) file", async () => {
    await copyVector("legacy-v1-cache.enc", dir.path);
    const backend = await tpmVectorCipher();
    const result = await saveCache({
      path,
      backend,
      fetched: [{ mapping: mapping("A"), value: value("a") }],
      prune: true,
    });
    expect(result).toMatchObject({ freshHmacKey: true, entries: 1 });
    expect(result.previousError).toBeUndefined();
  });

  it("round-trips 10,000 entries", async () => {
    const backend = keyfileCipher();
    const fetched = Array.from({ length: 10_000 }, (_, i) => ({
      mapping: mapping(`K${i}`),
      value: randomBytes(32),
    }));
    await saveCache({ path, backend, fetched, prune: true });
    const read = await readCacheFile({ path, backend });
    expect(read!.entries.size).toBe(10_000);
    const probe = fetched[1234]!;
    expect(
      Buffer.compare(read!.entries.get(cacheKey(read!.hmacKey, probe.mapping))!, probe.value),
    ).toBe(0);
  });
});

describe("readCacheFile", () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  beforeEach(async () => {
    dir = await tempDir();
  });
  afterEach(() => dir.cleanup());

  it("is undefined for a missing file", async () => {
    expect(
      await readCacheFile({ path: join(dir.path, "none.enc"), backend: keyfileCipher() }),
    ).toBeUndefined();
  });

  it("turns every envelope error into cache.<code> naming the path", async () => {
    const backend = await tpmVectorCipher();
    const cases: Array<[string, string]> = [
      ["bad-magic.enc", "cache.bad_magic"],
      ["truncated-header.enc", "cache.too_short"],
      ["unknown-version.enc", "cache.unsupported_version"],
      ["tampered.enc", "cache.auth_failed"],
      ["truncated-payload.enc", "cache.truncated"],
      ["hsm-cache.enc", "cache.tag_mismatch"],
    ];
    for (const [vector, code] of cases) {
      const path = await copyVector(vector, dir.path, vector);
      const error = await readCacheFile({ path, backend }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isPsiError(error), vector).toBe(true);
      expect((error as { code: string }).code, vector).toBe(code);
      expect((error as Error).message, vector).toContain(path);
    }
  });

  it("names both backends on a tag mismatch", async () => {
    const path = await copyVector("tpm-cache.enc", dir.path);
    const error = await readCacheFile({ path, backend: keyfileCipher() }).catch(
      (e: unknown) => e as Error,
    );
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toMatch(/tpm/);
    expect((error as Error).message).toMatch(/keyfile/);
  });

  it("is fs.not_regular, naming the path, for a directory in place of the file", async () => {
    const path = join(dir.path, "cache.enc");
    await writeFile(path, "x");
    const error = await readCacheFile({ path: dir.path, backend: keyfileCipher() }).catch(
      (e: unknown) => e,
    );
    expect(error).toMatchObject({
      code: "fs.not_regular",
      message: expect.stringContaining(`${dir.path}) is a directory`),
    });
  });
});
