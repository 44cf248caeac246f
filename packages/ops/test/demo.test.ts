import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { readCacheFile } from "@psi/cache";
import { createKeyfileCacheBackend, keyfileCacheBackend } from "@psi/cache-keyfile";
import { type CacheBackend, isPsiError, loadConfig, makeContext, parseMapping } from "@psi/core";
import { localProvider, openLocalBlob } from "@psi/provider-local";
import { podmanAvailable } from "@psi/testkit/podman";
import { requireTool, tempDir } from "@psi/testkit/tmp";
import { captureLogger } from "@psi/testkit/unix-http";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  DEMO_SAMPLES,
  demoEnvironment,
  demoLookup,
  demoThroughPodman,
  prepareDemoHost,
  startDemoServe,
} from "../src/index.js";

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

describe("startDemoServe", () => {
  it("serves the sealed samples through the local provider and closes everything", async () => {
    const host = await prepareDemoHost({ root: root.path });
    const socket = join(root.path, "demo.sock");
    const { logger } = captureLogger("warn");
    const loaded = await loadConfig({ path: host.configPath, env: {}, uid: process.getuid!() });
    const context = makeContext(loaded, { logger, env: {} });
    let backend: CacheBackend | undefined;
    context.openCacheBackend = async () => {
      if (backend === undefined) {
        backend = keyfileCacheBackend(context);
        await backend.open();
      }
      return backend;
    };
    const served = await startDemoServe({
      loaded,
      socket,
      logger,
      openProviders: async () => {
        const local = localProvider(context);
        await local.open();
        return new Map([["local", local]]);
      },
      openCacheBackend: () => context.openCacheBackend!(),
    });
    try {
      for (const sample of DEMO_SAMPLES) {
        expect(await demoLookup(socket, sample.name)).toBe(sample.value);
      }
      const missing = await demoLookup(socket, "demo--NOPE").catch((e: unknown) => e);
      expect(isPsiError(missing, "demo.lookup_failed")).toBe(true);
    } finally {
      await served.close();
      await host.remove();
    }
    await expect(stat(socket)).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("refuses to serve without the local provider, closing what opened", async () => {
    const host = await prepareDemoHost({ root: root.path });
    const socket = join(root.path, "demo.sock");
    const { logger } = captureLogger("error");
    const loaded = await loadConfig({ path: host.configPath, env: {}, uid: process.getuid!() });
    let closed = 0;
    const error = await startDemoServe({
      loaded,
      socket,
      logger,
      openProviders: async () => new Map(),
      openCacheBackend: async () => {
        const backend = createKeyfileCacheBackend({ path: host.keyFile });
        const close = backend.close.bind(backend);
        backend.close = async () => {
          closed++;
          await close();
        };
        return backend;
      },
    }).catch((e: unknown) => e);
    await host.remove();
    expect(isPsiError(error, "demo.local_failed")).toBe(true);
    expect(closed).toBe(1);
    await expect(stat(socket)).rejects.toMatchObject({ code: "ENOENT" });
  });
});

describe("demoEnvironment", () => {
  it("keeps the caller's environment but no PSI_* override or systemd credentials", () => {
    expect(
      demoEnvironment(
        {
          HOME: "/h",
          PATH: "/bin",
          PSI_SOCKET: "/x",
          PSI_CONFIG: "/y",
          CREDENTIALS_DIRECTORY: "/c",
        },
        "/demo/config.yaml",
      ),
    ).toEqual({ HOME: "/h", PATH: "/bin", PSI_CONFIG: "/demo/config.yaml" });
  });
});

/** The demo host served on a socket under `root`, as `psi demo` runs it. */
async function servedDemo(rootPath: string) {
  // Under the system's temp directory, as psi demo does: Podman refuses a runroot path
  // longer than 50 characters.
  const host = await prepareDemoHost();
  const socket = join(rootPath, "demo.sock");
  const { logger } = captureLogger("warn");
  const loaded = await loadConfig({ path: host.configPath, env: {}, uid: process.getuid!() });
  const context = makeContext(loaded, { logger, env: {} });
  const backend = keyfileCacheBackend(context);
  await backend.open();
  const served = await startDemoServe({
    loaded,
    socket,
    logger,
    openProviders: async () => {
      const local = localProvider({ ...context, openCacheBackend: async () => backend });
      await local.open();
      return new Map([["local", local]]);
    },
    openCacheBackend: async () => backend,
  });
  return {
    host,
    socket,
    async close() {
      await served.close();
      await backend.close();
      await host.remove();
    },
  };
}

describe.skipIf(requireTool(podmanAvailable(), "podman", "podman"))("demoThroughPodman", () => {
  it("has Podman resolve the DB password through the demo socket, in storage under the demo", async () => {
    const demo = await servedDemo(root.path);
    try {
      const commands: string[] = [];
      const result = await demoThroughPodman({
        host: demo.host,
        socket: demo.socket,
        env: process.env,
        onCommand: (line) => commands.push(line),
      });
      expect(result.skipped).toBeUndefined();
      expect(result.target).toBe("/run/secrets/db");
      expect(result.value?.toString("utf8")).toBe("correct-horse-battery-staple");
      expect(commands).toEqual([
        expect.stringMatching(/podman secret create --driver shell psi-demo-db-password -$/),
        expect.stringMatching(
          /--secret psi-demo-db-password,type=mount,target=\/run\/secrets\/db /,
        ),
      ]);
    } finally {
      await demo.close();
    }
  });

  it("reports what keeps it from running as skipped, never throws", async () => {
    const demo = await servedDemo(root.path);
    try {
      const noPodman = await demoThroughPodman({
        host: demo.host,
        socket: demo.socket,
        env: { PATH: join(root.path, "empty-bin") },
      });
      expect(noPodman).toEqual({ target: "/run/secrets/db", skipped: "podman is not installed" });
      // Its directory under a regular file: the walkthrough cannot even start.
      const blocked = await demoThroughPodman({
        host: { ...demo.host, dir: join(demo.host.configPath, "sub") },
        socket: demo.socket,
        env: process.env,
      });
      expect(blocked.skipped).toMatch(/ENOTDIR|not a directory/);
      expect(blocked.value).toBeUndefined();
    } finally {
      await demo.close();
    }
  });
});
