import { execFileSync } from "node:child_process";
import { chmod, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { createLogger, isPsiError, makeContext, parseConfig } from "@psi/core";
import { decodeCacheFile, encodeCacheFile, readHeader } from "@psi/envelope";
import { tempDir } from "@psi/testkit/tmp";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  createKeyfileCacheBackend,
  initKeyfile,
  KEYFILE_TAG,
  keyfileCacheBackend,
  keyfileCacheBackendFromKey,
  readKeyfile,
} from "../src/index.js";

async function codeOf(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise;
    return undefined;
  } catch (error) {
    return isPsiError(error) ? error.code : `not a PsiError: ${String(error)}`;
  }
}

describe("keyfile cache backend", () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  beforeEach(async () => {
    dir = await tempDir();
  });
  afterEach(() => dir.cleanup());

  it("initKeyfile creates a 32-byte key 0600 (and its directory 0700)", async () => {
    const path = join(dir.path, "etc", "psi", "cache.keyfile");
    const key = await initKeyfile({ path });
    expect(key).toHaveLength(32);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir.path, "etc", "psi"))).mode & 0o777).toBe(0o700);
    expect(Buffer.compare(await readFile(path), Buffer.from(key))).toBe(0);
  });

  it("initKeyfile refuses to overwrite without force, replaces with force", async () => {
    const path = join(dir.path, "cache.keyfile");
    const first = await initKeyfile({ path });
    expect(await codeOf(initKeyfile({ path }))).toBe("cache.keyfile_exists");
    expect(Buffer.compare(await readFile(path), Buffer.from(first))).toBe(0);
    const second = await initKeyfile({ path, force: true });
    expect(Buffer.compare(await readFile(path), Buffer.from(second))).toBe(0);
    expect(Buffer.compare(first, second)).not.toBe(0);
  });

  it("encrypts a PSIC file with tag 0x03 that reads back with the key from disk", async () => {
    const path = join(dir.path, "cache.keyfile");
    await initKeyfile({ path });
    const backend = createKeyfileCacheBackend({ path });
    expect(backend).toMatchObject({ name: "keyfile", tag: 0x03 });
    expect(KEYFILE_TAG).toBe(3);
    await backend.open();
    const entries = new Map([["ab", Buffer.from("value")]]);
    const file = await encodeCacheFile(
      { hmacKey: Buffer.alloc(32, 7), entries, writtenAt: 1 },
      backend,
    );
    expect(readHeader(file)).toEqual({ version: 1, tag: 3 });
    await backend.close();
    const again = createKeyfileCacheBackend({ path });
    await again.open();
    const decoded = await decodeCacheFile(file, again);
    expect(decoded.entries.get("ab")?.toString()).toBe("value");
    // a different key cannot read it
    const other = keyfileCacheBackendFromKey(Buffer.alloc(32, 1));
    await other.open();
    await expect(decodeCacheFile(file, other)).rejects.toMatchObject({ code: "auth_failed" });
  });

  it("explains a missing key file with the init command", async () => {
    const path = join(dir.path, "missing.keyfile");
    const backend = createKeyfileCacheBackend({ path });
    const error = await backend.open().catch((e: unknown) => e);
    expect(isPsiError(error, "cache.keyfile_missing")).toBe(true);
    expect((error as Error).message).toContain(path);
    expect((error as { hint: string }).hint).toContain("psi cache init --backend keyfile");
  });

  it("refuses a key of the wrong size without reading it", async () => {
    const path = join(dir.path, "short.keyfile");
    await writeFile(path, Buffer.alloc(16), { mode: 0o600 });
    expect(await codeOf(readKeyfile(path))).toBe("cache.keyfile_invalid");
    await writeFile(path, "", { mode: 0o600 });
    expect(await codeOf(readKeyfile(path))).toBe("cache.keyfile_invalid");
  });

  it("refuses a key file group or others may read (an error, like ssh)", async () => {
    const path = join(dir.path, "open.keyfile");
    await writeFile(path, Buffer.alloc(32, 9), { mode: 0o600 });
    await chmod(path, 0o640);
    const error = await readKeyfile(path).catch((e: unknown) => e);
    expect(isPsiError(error, "cache.keyfile_insecure")).toBe(true);
    expect((error as Error).message).toContain("0640");
    expect((error as { hint: string }).hint).toContain(`chmod 600 ${path}`);
    await chmod(path, 0o400);
    expect(await readKeyfile(path)).toHaveLength(32);
  });

  it("refuses a directory", async () => {
    expect(await codeOf(readKeyfile(dir.path))).toBe("cache.keyfile_invalid");
  });

  it("refuses a FIFO at once, without waiting for a writer", async () => {
    const path = join(dir.path, "fifo.key");
    execFileSync("mkfifo", ["-m", "600", path]);
    expect(await codeOf(readKeyfile(path))).toBe("cache.keyfile_invalid");
  });

  it("reloadKey re-reads the file: true once it changed, false while it is the same", async () => {
    const path = join(dir.path, "cache.keyfile");
    await initKeyfile({ path });
    const backend = createKeyfileCacheBackend({ path });
    await backend.open();
    const sealed = await backend.encrypt(Buffer.from("payload"));
    expect(await backend.reloadKey!()).toBe(false);
    expect(Buffer.from(await backend.decrypt(sealed)).toString()).toBe("payload");
    await initKeyfile({ path, force: true });
    expect(await backend.reloadKey!()).toBe(true);
    await expect(backend.decrypt(sealed)).rejects.toMatchObject({ code: "auth_failed" });
    const resealed = await backend.encrypt(Buffer.from("again"));
    const fresh = createKeyfileCacheBackend({ path });
    await fresh.open();
    expect(Buffer.from(await fresh.decrypt(resealed)).toString()).toBe("again");
    await backend.close();
    await fresh.close();
  });

  it("is unusable before open()", async () => {
    const backend = createKeyfileCacheBackend({ path: join(dir.path, "x") });
    expect(await codeOf(backend.encrypt(Buffer.from("x")))).toBe("cache.not_open");
  });

  it("the registered factory reads cache.key_file, else <config_dir>/cache.keyfile", async () => {
    const logger = createLogger({ level: "silent", stream: { write: () => true } });
    const context = (yaml: string) =>
      makeContext(
        parseConfig(yaml, join(dir.path, "config.yaml"), { env: {}, uid: 1000, home: dir.path }),
        {
          logger,
          env: {},
        },
      );
    await initKeyfile({ path: join(dir.path, "cache.keyfile") });
    const byDefault = keyfileCacheBackend(context("cache: { backend: keyfile }\n"));
    await byDefault.open();
    await byDefault.close();
    const custom = join(dir.path, "custom.key");
    const configured = keyfileCacheBackend(
      context(`cache: { backend: keyfile, key_file: ${custom} }\n`),
    );
    const error = (await configured.open().catch((e: unknown) => e)) as Error;
    expect(error.message).toContain(custom);
  });
});
