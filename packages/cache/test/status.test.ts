import { chmod, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { tempDir } from "@psi/testkit/tmp";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { readCacheStatus } from "../src/index.js";
import { copyVector } from "./helpers.js";

describe("readCacheStatus", () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  beforeEach(async () => {
    dir = await tempDir();
  });
  afterEach(() => dir.cleanup());

  it("reports a missing file without error", async () => {
    const path = join(dir.path, "cache.enc");
    expect(await readCacheStatus(path)).toEqual({ path, exists: false });
  });

  it("reads header and metadata of a tpm file without any key", async () => {
    const path = await copyVector("tpm-cache.enc", dir.path);
    await chmod(path, 0o600);
    const status = await readCacheStatus(path);
    expect(status).toMatchObject({
      path,
      exists: true,
      version: 1,
      tag: 1,
      backend: "tpm",
      mode: 0o600,
    });
    expect(status.size).toBeGreaterThan(6);
    expect(status.mtimeMs).toBeGreaterThan(0);
    expect(status.error).toBeUndefined();
  });

  it("names the header problem of a bad file", async () => {
    const cases: Array<[string, string]> = [
      ["bad-magic.enc", "cache.bad_magic"],
      ["truncated-header.enc", "cache.too_short"],
      ["unknown-version.enc", "cache.unsupported_version"],
    ];
    for (const [vector, code] of cases) {
      const path = await copyVector(vector, dir.path, vector);
      const status = await readCacheStatus(path);
      expect(status.error?.code, vector).toBe(code);
      expect(status.error?.message, vector).toContain(path);
    }
    const unknown = await readCacheStatus(join(dir.path, "unknown-version.enc"));
    expect(unknown.version).not.toBe(1);
    expect(unknown.tag).toBeTypeOf("number");
  });

  it("reports the hsm and keyfile tags by name", async () => {
    const hsm = await readCacheStatus(await copyVector("hsm-cache.enc", dir.path, "hsm.enc"));
    expect(hsm).toMatchObject({ tag: 2, backend: "hsm" });
    const keyfile = join(dir.path, "keyfile.enc");
    await writeFile(keyfile, Buffer.from([0x50, 0x53, 0x49, 0x43, 0x01, 0x03, 0, 0]));
    expect(await readCacheStatus(keyfile)).toMatchObject({ tag: 3, backend: "keyfile", size: 8 });
  });
});
