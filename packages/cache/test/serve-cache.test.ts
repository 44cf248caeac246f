import { join } from "node:path";
import type { CacheBackend, CacheConfig } from "@psi/core";
import { tempDir } from "@psi/testkit/tmp";
import { captureLogger } from "@psi/testkit/unix-http";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { openServeCache } from "../src/index.js";
import { copyVector, tpmVectorCipher } from "./helpers.js";

// serve's cache policy: every failure is a warning and lookups go live, never a crash.

let dir: { path: string; cleanup: () => Promise<void> };
beforeEach(async () => {
  dir = await tempDir("psi-serve-cache-");
});
afterEach(async () => {
  await dir.cleanup();
});

async function vectorBackend(): Promise<CacheBackend> {
  const cipher = await tpmVectorCipher();
  return {
    name: "tpm",
    tag: 0x01,
    async open() {},
    encrypt: async (plaintext) => cipher.encrypt(plaintext),
    decrypt: async (payload) => cipher.decrypt(payload),
    async close() {},
  };
}

const settings = (over: Partial<CacheConfig>) =>
  ({ enabled: true, backend: "tpm", ...over }) as CacheConfig;

describe("openServeCache", () => {
  it("is off without a cache block or with enabled: false", async () => {
    const { logger } = captureLogger("info");
    const never = async () => {
      throw new Error("must not open a backend");
    };
    for (const off of [undefined, settings({ enabled: false })]) {
      const opened = await openServeCache({
        settings: off,
        path: join(dir.path, "cache.enc"),
        logger,
        openBackend: never,
      });
      expect(opened).toEqual({ cache: undefined, backend: undefined });
    }
  });

  it("loads the file through the backend", async () => {
    const path = await copyVector("tpm-cache.enc", dir.path);
    const { logger, text } = captureLogger("info");
    const backend = await vectorBackend();
    const opened = await openServeCache({
      settings: settings({}),
      path,
      logger,
      openBackend: async () => backend,
    });
    try {
      expect(opened.backend).toBe(backend);
      expect(opened.cache?.stats().fileEntries).toBeGreaterThan(0);
      expect(text()).toContain("cache loaded from");
    } finally {
      opened.cache?.close();
    }
  });

  it("falls back to memory only when the backend fails to open, with a warning", async () => {
    const { logger, records } = captureLogger("info");
    const opened = await openServeCache({
      settings: settings({}),
      path: join(dir.path, "cache.enc"),
      logger,
      openBackend: async () => {
        throw new Error("no TPM here");
      },
    });
    try {
      expect(opened.backend).toBeUndefined();
      expect(opened.cache).toBeDefined();
      expect(opened.cache?.stats().backend).toBe(false);
      const warning = records().find((r) => r["level"] === "warn");
      expect(String(warning?.["msg"] ?? warning?.["message"])).toContain(
        "cache backend tpm failed to open",
      );
    } finally {
      opened.cache?.close();
    }
  });
});
