import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  type CacheBackend,
  isPsiError,
  loadConfig,
  makeContext,
  type PsiContext,
  parseMapping,
} from "@psi/core";
import { aesGcmBackend } from "@psi/envelope";
import { createLocalProvider, sealLocalSecret } from "@psi/provider-local";
import { recordingLogger } from "@psi/testkit/logger";
import { tempDir } from "@psi/testkit/tmp";
import { afterEach, beforeEach, describe, expect, it } from "vitest";

// `psi local store`'s operation over a context loaded from a real configuration file and
// a backend over @psi/envelope's real AES-GCM (the keyfile backend's cipher).

let dir: { path: string; cleanup: () => Promise<void> };
beforeEach(async () => {
  dir = await tempDir("psi-local-store-");
});
afterEach(async () => {
  await dir.cleanup();
});

function keyfileBackend(): CacheBackend {
  const cipher = aesGcmBackend(randomBytes(32), 0x03);
  return {
    name: "keyfile",
    tag: cipher.tag,
    open: async () => {},
    encrypt: async (plaintext) => cipher.encrypt(plaintext),
    decrypt: async (payload) => cipher.decrypt(payload),
    close: async () => {},
  };
}

async function context(yaml: string, backend: CacheBackend | undefined): Promise<PsiContext> {
  const path = join(dir.path, "config.yaml");
  await writeFile(path, `state_dir: ${dir.path}\n${yaml}`);
  const loaded = await loadConfig({ path, env: {}, uid: process.getuid!() });
  return {
    ...makeContext(loaded, { logger: recordingLogger(), env: {} }),
    openCacheBackend: async () => backend,
  };
}

async function failure(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => undefined,
    (error: unknown) => error,
  );
}

describe("sealLocalSecret", () => {
  it("seals the value read into a mapping the local provider opens, and zeroes the value", async () => {
    const backend = keyfileBackend();
    const value = Buffer.from("s3cret-value");
    const mapping = await sealLocalSecret(
      await context("providers: { local: {} }\n", backend),
      async () => value,
    );
    expect(value.every((byte) => byte === 0)).toBe(true);
    const provider = createLocalProvider({ openCacheBackend: async () => backend });
    await provider.open();
    expect(Buffer.from(await provider.lookup(parseMapping(mapping))).toString()).toBe(
      "s3cret-value",
    );
  });

  it("refuses before reading when providers.local is not configured", async () => {
    let read = false;
    const error = await failure(
      sealLocalSecret(await context("", keyfileBackend()), async () => {
        read = true;
        return Buffer.from("x");
      }),
    );
    expect(isPsiError(error, "local.not_configured")).toBe(true);
    expect(read).toBe(false);
  });

  it("without a cache backend is local.no_backend with a hint, the value zeroed", async () => {
    const value = Buffer.from("never-sealed");
    const error = await failure(
      sealLocalSecret(await context("providers: { local: {} }\n", undefined), async () => value),
    );
    expect(isPsiError(error, "local.no_backend")).toBe(true);
    expect((error as { hint?: string }).hint).toContain("psi cache init");
    expect(value.every((byte) => byte === 0)).toBe(true);
  });
});
