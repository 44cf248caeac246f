import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { readCacheFile } from "@psi/cache";
import { createKeyfileCacheBackend } from "@psi/cache-keyfile";
import { loadConfig, parseMapping } from "@psi/core";
import { openLocalBlob } from "@psi/provider-local";
import { tempDir } from "@psi/testkit/tmp";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { DEMO_SAMPLES, prepareDemoHost } from "../src/index.js";

// The demo host on real files: the configuration loads, the mappings open with the keyfile
// and give the samples back, the cache file is empty, and remove() leaves nothing.

let root: { path: string; cleanup: () => Promise<void> };
beforeEach(async () => {
  root = await tempDir("psi-ops-demo-");
});
afterEach(async () => {
  await root.cleanup();
});

describe("prepareDemoHost", () => {
  it("writes a configuration, sealed 0600 samples and an empty cache, and removes it all", async () => {
    const host = await prepareDemoHost({ root: root.path });
    expect(host.dir.startsWith(join(root.path, "psi-demo-"))).toBe(true);
    const loaded = await loadConfig({ path: host.configPath, env: {}, uid: process.getuid!() });
    expect(loaded.config.cache?.backend).toBe("keyfile");
    expect(loaded.paths.stateDir).toBe(host.stateDir);

    const backend = createKeyfileCacheBackend({ path: host.keyFile });
    await backend.open();
    try {
      expect(host.samples.map((s) => s.name)).toEqual(DEMO_SAMPLES.map((s) => s.name));
      for (const sample of host.samples) {
        const file = join(host.stateDir, sample.name);
        expect((await stat(file)).mode & 0o777).toBe(0o600);
        const bytes = await readFile(file);
        expect(Buffer.from(sample.mapping).equals(bytes)).toBe(true);
        const value = await openLocalBlob(backend, String(parseMapping(bytes)["blob"]));
        expect(Buffer.from(value).toString()).toBe(sample.value);
      }
      const cache = await readCacheFile({ path: join(host.stateDir, "cache.enc"), backend });
      expect(cache?.entries.size).toBe(0);
    } finally {
      await backend.close();
    }

    await host.remove();
    await expect(stat(host.dir)).rejects.toMatchObject({ code: "ENOENT" });
  });
});
