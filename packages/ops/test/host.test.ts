import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { isPsiError } from "@psi/core";
import { tempDir } from "@psi/testkit/tmp";
import { captureLogger } from "@psi/testkit/unix-http";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { backendFactory, openHost, providerFactory } from "../src/index.js";

// The host wiring a frontend opens once per run, on real configuration and key files.

let dir: { path: string; cleanup: () => Promise<void> };
const uid = process.getuid!();

beforeEach(async () => {
  dir = await tempDir("psi-ops-host-");
});
afterEach(async () => {
  await dir.cleanup();
});

async function config(text: string): Promise<string> {
  const path = join(dir.path, "config.yaml");
  await writeFile(path, `state_dir: ${join(dir.path, "state")}\n${text}`);
  return path;
}

describe("openHost", () => {
  it("reports a named configuration file that is missing, and by which name", async () => {
    const { logger } = captureLogger();
    const missing = join(dir.path, "nope.yaml");
    const flag = openHost({
      env: { HOME: dir.path },
      uid,
      configPath: missing,
      logger: () => logger,
    });
    const error = await flag.optionalConfig().catch((e: unknown) => e);
    expect(isPsiError(error, "config.named_missing")).toBe(true);
    expect((error as Error).message).toContain("(named by --config)");
    const env = { HOME: dir.path, PSI_CONFIG: missing };
    const named = await openHost({ env, uid, logger: () => logger })
      .loadConfig()
      .catch((e) => e);
    expect((named as Error).message).toContain("(named by PSI_CONFIG)");
  });

  it("treats an absent default file as no configuration", async () => {
    const { logger } = captureLogger();
    const env = { HOME: dir.path, XDG_CONFIG_HOME: join(dir.path, "xdg") };
    expect(await openHost({ env, uid, logger: () => logger }).optionalConfig()).toBeUndefined();
  });

  it("opens the configured providers over one shared cache backend, skipping one that fails", async () => {
    const keyFile = join(dir.path, "cache.keyfile");
    await writeFile(keyFile, randomBytes(32), { mode: 0o600 });
    const path = await config(
      `cache: { enabled: true, backend: keyfile, key_file: ${keyFile} }\n` +
        `providers:\n  local: {}\n  nitrokeyhsm: { module: ${join(dir.path, "no-module.so")} }\n`,
    );
    const { logger, records } = captureLogger();
    const host = openHost({ env: { HOME: dir.path }, uid, configPath: path, logger: () => logger });
    const opened = await host.openProviders();
    expect([...opened.keys()]).toEqual(["local"]);
    expect(records().find((r) => r.event === "provider.open_failed")).toMatchObject({
      provider: "nitrokeyhsm",
    });
    const context = await host.context();
    const first = await context.openCacheBackend?.();
    expect(first).toBeDefined();
    expect(await (await host.context()).openCacheBackend?.()).toBe(first);
    expect(await host.openCacheBackend()).toBe(first);
    expect(await host.cacheBackend()).toBeDefined();
    await first?.close();
    for (const provider of opened.values()) await provider.close?.();
  });

  it("has no cache backend while the cache is off", async () => {
    const path = await config("cache: { enabled: false, backend: keyfile }\n");
    const { logger } = captureLogger();
    const host = openHost({ env: { HOME: dir.path }, uid, configPath: path, logger: () => logger });
    expect(await host.cacheBackend()).toBeUndefined();
    // Off for the cache, still there for local secrets: the opened backend stays available.
    await writeFile(join(dir.path, "cache.keyfile"), randomBytes(32), { mode: 0o600 });
    const opened = await host.openCacheBackend();
    expect(opened).toBeDefined();
    await opened?.close();
  });
});

describe("the wiring", () => {
  it("names the known providers and backends when asked for an unknown one", async () => {
    const provider = await providerFactory("vault").catch((e: unknown) => e);
    expect(isPsiError(provider, "provider.unknown")).toBe(true);
    expect((provider as { hint?: string }).hint).toBe(
      "known providers: infisical, nitrokeyhsm, local",
    );
    const backend = await backendFactory("disk").catch((e: unknown) => e);
    expect(isPsiError(backend, "cache.unknown_backend")).toBe(true);
    expect((backend as { hint?: string }).hint).toBe("known backends: tpm, hsm, keyfile");
  });
});
