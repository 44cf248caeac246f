import { randomBytes } from "node:crypto";
import { mkdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { readCacheFile } from "@psi/cache";
import type { FetchedSecret, Provider, PsiContext } from "@psi/core";
import { infisicalMappingBytes, makeContext, PsiError, parseConfig } from "@psi/core";
import { aesGcmBackend, cacheKeyer, TAG_KEYFILE } from "@psi/envelope";
import { createPodmanClient, type PodmanClient } from "@psi/podman";
import { runSetup, type SetupOptions, type SetupProgress, setupFailures } from "@psi/setup";
import { type PodmanSandbox, podmanAvailable, podmanSandbox } from "@psi/testkit/podman";
import { requireTool, tempDir } from "@psi/testkit/tmp";
import { captureLogger } from "@psi/testkit/unix-http";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";

// runSetup against a real Podman service. The shell driver here is plain `cat`/`rm` into
// state_dir (what `psi serve`'s store does), so these tests exercise the orchestration;
// the provider is an in-memory implementation of the Provider contract that counts and
// times its listings. The whole chain with the Infisical provider, the fake Infisical and
// a running `psi serve` is covered in apps/psi/test/setup*.test.ts.

const skip = requireTool(podmanAvailable(), "podman", "podman");

type Folder = Record<string, string>;

interface MemoryProvider extends Provider {
  folders: Map<string, Folder>;
  calls: string[];
  failing: Set<string>;
  peak: number;
  /** Listings wait until this many have run at once (makes the overlap certain, not timed). */
  barrier: number;
}

function memoryProvider(folders: Record<string, Folder>): MemoryProvider {
  let running = 0;
  const provider: MemoryProvider = {
    name: "infisical",
    folders: new Map(Object.entries(folders)),
    calls: [],
    failing: new Set(),
    peak: 0,
    barrier: 1,
    async open() {},
    async close() {},
    async lookup() {
      throw new PsiError("provider.not_found", "not used here");
    },
    async listSource(source) {
      const path = String(source["path"]);
      provider.calls.push(path);
      running++;
      provider.peak = Math.max(provider.peak, running);
      try {
        // Held until `barrier` listings ran at once (then none waits again): the overlap
        // the concurrency test measures is certain, not a matter of timing.
        while (provider.peak < provider.barrier) await new Promise(setImmediate);
        if (provider.failing.has(path))
          throw new PsiError("provider.unreachable", "cannot reach Infisical at test");
        const folder = provider.folders.get(path);
        if (!folder) throw new PsiError("provider.not_found", `folder ${path} not found`);
        return Object.entries(folder).map(([key, value]): FetchedSecret => {
          const mapping = { provider: "infisical", project: String(source["project"]), path, key };
          return {
            key,
            mapping,
            mappingBytes: infisicalMappingBytes(mapping),
            value: new Uint8Array(Buffer.from(value)),
          };
        });
      } finally {
        running--;
      }
    },
    sourceKey(source) {
      return JSON.stringify([source["project"], source["path"], source["recursive"] ?? false]);
    },
  };
  return provider;
}

describe.skipIf(skip)("runSetup (real Podman)", () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  let sandbox: PodmanSandbox;
  let podman: PodmanClient;
  let stateDir: string;
  let systemdDir: string;
  let cachePath: string;
  const key = randomBytes(32);
  const backend = aesGcmBackend(key, TAG_KEYFILE);
  const driverOptions: Record<string, string> = {};

  function context(workloads: Record<string, unknown>): {
    context: PsiContext;
    logs: () => string;
  } {
    const text = JSON.stringify({
      state_dir: stateDir,
      systemd_dir: systemdDir,
      providers: {
        infisical: {
          auth: { method: "universal-auth", client_id: "a", client_secret: "b" },
          projects: { proj: { id: "p1" } },
        },
        local: {},
        nitrokeyhsm: {},
      },
      workloads,
    });
    const loaded = parseConfig(text, join(dir.path, "config.yaml"), { env: {}, uid: 1000 });
    const captured = captureLogger("debug");
    return {
      context: makeContext(loaded, { logger: captured.logger, env: { PATH: "" } }),
      logs: captured.text,
    };
  }

  const src = (path: string) => ({ project: "proj", path });

  function options(
    provider: MemoryProvider,
    workloads: Record<string, unknown>,
    extra: Partial<SetupOptions> = {},
  ): SetupOptions & { logs: () => string } {
    const { context: ctx, logs } = context(workloads);
    return {
      context: ctx,
      providers: new Map([["infisical", provider]]),
      podman,
      cache: { path: cachePath, backend },
      daemonReload: false,
      expectedDriverOptions: driverOptions,
      logs,
      ...extra,
    };
  }

  async function cached(mapping: Record<string, unknown>): Promise<string | undefined> {
    const decoded = await readCacheFile({ path: cachePath, backend });
    const value = decoded?.entries.get(cacheKeyer(decoded.hmacKey)(mapping));
    return value === undefined ? undefined : Buffer.from(value).toString();
  }

  beforeAll(async () => {
    dir = await tempDir("psi-setup-lib-");
    stateDir = join(dir.path, "state");
    systemdDir = join(dir.path, "systemd");
    cachePath = join(stateDir, "cache.enc");
    await mkdir(stateDir);
    Object.assign(driverOptions, {
      store: `cat > ${stateDir}/$SECRET_ID`,
      lookup: `cat ${stateDir}/$SECRET_ID`,
      delete: `rm -f ${stateDir}/$SECRET_ID`,
      list: `ls ${stateDir}`,
    });
    const conf =
      '[secrets]\ndriver = "shell"\n\n[secrets.opts]\n' +
      Object.entries(driverOptions)
        .map(([name, value]) => `${name} = "${value}"`)
        .join("\n") +
      "\n";
    sandbox = await podmanSandbox(join(dir.path, "podman"), conf);
    await sandbox.startService();
    podman = createPodmanClient({ socketPath: sandbox.socketPath });
  });
  afterAll(async () => {
    await sandbox?.stop();
    await dir?.cleanup();
  });
  beforeEach(async () => {
    for (const secret of await podman.listSecrets()) await podman.deleteSecret(secret.name);
    await rm(cachePath, { force: true });
    await rm(systemdDir, { recursive: true, force: true });
  });

  it("merges sources in order, lists a shared source once, and registers the mapping bytes", async () => {
    const provider = memoryProvider({
      "/a": { ONE: "a-one", TWO: "a-two" },
      "/b": { TWO: "b-two", THREE: "b-three" },
    });
    const progress: SetupProgress[] = [];
    const run = options(
      provider,
      { app: { secrets: [src("/a"), src("/b")] }, web: { secrets: [src("/b")] } },
      {
        onProgress: (p) => progress.push(p),
      },
    );
    const result = await runSetup(run);
    expect(result.ok).toBe(true);
    expect(setupFailures(result)).toEqual({
      workloads: 0,
      drift: 0,
      errors: 0,
      cache: 0,
      restarts: 0,
    });
    expect(provider.calls.sort()).toEqual(["/a", "/b"]);
    expect(result.sources).toEqual({ listed: 2, references: 3, failed: 0 });
    const byName = new Map((await podman.listSecrets()).map((secret) => [secret.name, secret]));
    expect([...byName.keys()].sort()).toEqual([
      "app--ONE",
      "app--THREE",
      "app--TWO",
      "web--THREE",
      "web--TWO",
    ]);
    expect(await readFile(join(stateDir, byName.get("app--TWO")!.id), "utf8")).toBe(
      '{"provider": "infisical", "project": "proj", "path": "/b", "key": "TWO"}',
    );
    expect(
      await cached({ provider: "infisical", project: "proj", path: "/a", key: "TWO" }),
    ).toBeUndefined();
    expect(await cached({ provider: "infisical", project: "proj", path: "/b", key: "TWO" })).toBe(
      "b-two",
    );
    expect(result.cache).toMatchObject({
      status: "written",
      entries: 3,
      added: 3,
      pruneApplied: true,
    });
    const last = progress.at(-1)!;
    expect(last).toEqual({
      sources: { done: 2, total: 2 },
      secrets: { done: 5, total: 5 },
      workloads: { done: 2, total: 2 },
    });
    expect(run.logs()).not.toContain("b-two");
  });

  it("bounds parallel listings by `concurrency` and keeps the output in config order", async () => {
    const folders: Record<string, Folder> = {};
    const workloads: Record<string, unknown> = {};
    for (let i = 0; i < 12; i++) {
      folders[`/w${i}`] = { K: `v${i}` };
      workloads[`w${String(i).padStart(2, "0")}`] = { secrets: [src(`/w${i}`)] };
    }
    const provider = memoryProvider(folders);
    provider.barrier = 3;
    const result = await runSetup(options(provider, workloads, { concurrency: 3 }));
    expect(result.ok).toBe(true);
    expect(provider.peak).toBe(3);
    expect(result.workloads.map((workload) => workload.name)).toEqual(Object.keys(workloads));

    const sequential = memoryProvider(folders);
    await runSetup(options(sequential, workloads, { concurrency: 1 }));
    expect(sequential.peak).toBe(1);
  });

  it("re-creates a secret whose driver options or mapping are stale, leaves current ones alone", async () => {
    const provider = memoryProvider({ "/a": { ONE: "1", TWO: "2" } });
    const workloads = { app: { secrets: [src("/a")] } };
    await runSetup(options(provider, workloads));
    const before = new Map((await podman.listSecrets()).map((secret) => [secret.name, secret.id]));
    // Options differ from what psi install would write now (e.g. a rotated token).
    const rotated = { ...driverOptions, lookup: `${driverOptions["lookup"]} # rotated` };
    const result = await runSetup(options(provider, workloads, { expectedDriverOptions: rotated }));
    expect(result.workloads[0]).toMatchObject({ replaced: ["ONE", "TWO"], unchanged: [] });
    const after = new Map((await podman.listSecrets()).map((secret) => [secret.name, secret.id]));
    expect(after.get("app--ONE")).not.toBe(before.get("app--ONE"));

    const again = await runSetup(options(provider, workloads));
    expect(again.workloads[0]).toMatchObject({ unchanged: ["ONE", "TWO"] });
    // A mapping file that went missing (orphaned secret) is re-created.
    await rm(join(stateDir, after.get("app--TWO")!));
    const healed = await runSetup(options(provider, workloads));
    expect(healed.workloads[0]).toMatchObject({ unchanged: ["ONE"], replaced: ["TWO"] });
    const reregistered = await runSetup(options(provider, workloads, { reregister: true }));
    expect(reregistered.workloads[0]).toMatchObject({ replaced: ["ONE", "TWO"] });
  });

  it("a run where every fetch fails leaves cache.enc and the drop-ins untouched", async () => {
    const provider = memoryProvider({ "/a": { ONE: "1" } });
    const workloads = { app: { secrets: [src("/a")] } };
    await runSetup(options(provider, workloads));
    const bytes = await readFile(cachePath);
    const dropIn = join(systemdDir, "app.container.d/50-secrets.conf");
    const dropInBefore = await stat(dropIn);
    provider.failing.add("/a");
    provider.folders.set("/a", { ONE: "1", NEW: "n" });
    const result = await runSetup(options(provider, workloads));
    expect(result.ok).toBe(false);
    expect(result.workloads[0]).toMatchObject({
      status: "failed",
      fetched: false,
      errors: [
        { stage: "fetch", code: "provider.unreachable", source: { project: "proj", path: "/a" } },
      ],
    });
    expect(result.cache.status).toBe("skipped");
    expect(await readFile(cachePath)).toEqual(bytes);
    expect((await stat(dropIn)).mtimeMs).toBe(dropInBefore.mtimeMs);
    expect((await podman.listSecrets()).map((secret) => secret.name)).toEqual(["app--ONE"]);
  });

  it("a partial run adds and updates but prunes nothing; a complete one prunes", async () => {
    const provider = memoryProvider({ "/a": { ONE: "1", GONE: "g" }, "/b": { B: "b" } });
    const workloads = { app: { secrets: [src("/a")] }, web: { secrets: [src("/b")] } };
    await runSetup(options(provider, workloads));
    provider.folders.set("/a", { ONE: "1-new" });
    provider.failing.add("/b");
    const partial = await runSetup(options(provider, workloads));
    expect(partial.cache).toMatchObject({
      status: "written",
      pruneApplied: false,
      pruned: 0,
      updated: 1,
    });
    expect(await cached({ provider: "infisical", project: "proj", path: "/a", key: "GONE" })).toBe(
      "g",
    );
    expect(partial.drift).toEqual([expect.objectContaining({ secret: "app--GONE", key: "GONE" })]);
    expect(setupFailures(partial)).toMatchObject({ workloads: 1, drift: 1, cache: 0 });

    // Partial again with nothing new: the file is not rewritten at all.
    const bytes = await readFile(cachePath);
    const quiet = await runSetup(options(provider, workloads));
    expect(quiet.cache.status).toBe("unchanged");
    expect(await readFile(cachePath)).toEqual(bytes);

    provider.failing.clear();
    const complete = await runSetup(options(provider, workloads));
    expect(complete.cache).toMatchObject({
      status: "written",
      pruneApplied: true,
      pruned: 1,
      entries: 2,
    });
    expect(
      await cached({ provider: "infisical", project: "proj", path: "/a", key: "GONE" }),
    ).toBeUndefined();
  });

  it("an emptied source keeps the workload's secrets and fails until the operator allows it", async () => {
    const provider = memoryProvider({ "/a": { ONE: "1", TWO: "2" }, "/b": { B: "b" } });
    const workloads = {
      app: { secrets: [src("/a"), src("/b")] },
      web: { secrets: [src("/b")] },
    };
    await runSetup(options(provider, workloads));
    const dropIn = join(systemdDir, "app.container.d", "50-secrets.conf");
    const before = await readFile(dropIn, "utf8");
    const one = { provider: "infisical", project: "proj", path: "/a", key: "ONE" };

    // The folder was emptied (or the server answered a missing folder with an empty list).
    provider.folders.set("/a", {});
    const run = options(provider, workloads);
    const guarded = await runSetup(run);
    expect(guarded.ok).toBe(false);
    const app = guarded.workloads[0]!;
    expect(app).toMatchObject({ status: "failed", kept: ["ONE", "TWO"] });
    expect(app.errors).toEqual([
      expect.objectContaining({
        code: "setup.empty_source",
        source: { ...src("/a"), recursive: false },
        hint: expect.stringContaining("allow_empty: true"),
      }),
    ]);
    expect(app.errors[0]!.hint).toContain("psi setup --allow-empty");
    expect(run.logs()).toContain("listed no secrets");
    // Kept: not reported as drift, the drop-in still names them, the cache still holds them.
    expect(guarded.drift).toEqual([]);
    expect(await readFile(dropIn, "utf8")).toBe(before);
    expect(guarded.cache).toMatchObject({ status: "written", pruneApplied: true, pruned: 0 });
    expect(await cached(one)).toBe("1");
    expect(guarded.workloads[1]).toMatchObject({ status: "ok" });

    // Confirmed per workload: the emptied keys are pruned (and left to drift's fix).
    const allowed = await runSetup(
      options(provider, { ...workloads, app: { ...workloads.app, allow_empty: true } }),
    );
    expect(allowed.workloads[0]).toMatchObject({ kept: [], errors: [] });
    expect(allowed.cache).toMatchObject({ status: "written", pruned: 2 });
    expect(await cached(one)).toBeUndefined();
    expect(await readFile(dropIn, "utf8")).not.toContain("ONE");
  });

  it("--allow-empty confirms for every workload; a source empty from the start is no problem", async () => {
    const provider = memoryProvider({ "/a": { ONE: "1" }, "/new": {} });
    const workloads = { app: { secrets: [src("/a")] }, fresh: { secrets: [src("/new")] } };
    const first = await runSetup(options(provider, workloads));
    expect(first.workloads.map((workload) => workload.status)).toEqual(["ok", "ok"]);
    provider.folders.set("/a", {});
    const allowed = await runSetup(options(provider, workloads, { allowEmpty: true }));
    expect(allowed.workloads[0]).toMatchObject({ status: "ok", kept: [] });
    expect(allowed.cache).toMatchObject({ status: "written", pruned: 1, entries: 0 });
  });

  it("warns and carries on when the backend cannot open, or the old file is unreadable", async () => {
    const provider = memoryProvider({ "/a": { ONE: "1" } });
    const workloads = { app: { secrets: [src("/a")] } };
    const down = options(provider, workloads, {
      cache: {
        path: cachePath,
        backend: () =>
          Promise.reject(
            new PsiError("cache.keyfile_missing", "no key", { hint: "psi cache init" }),
          ),
      },
    });
    const result = await runSetup(down);
    expect(result.ok).toBe(true);
    expect(result.cache).toMatchObject({ status: "unavailable", code: "cache.keyfile_missing" });
    expect(down.logs()).toContain("container starts will hit the live provider");
    await expect(stat(cachePath)).rejects.toThrow();

    await writeFile(cachePath, "not a cache file");
    const fresh = options(provider, workloads);
    const rewritten = await runSetup(fresh);
    expect(rewritten.cache).toMatchObject({ status: "written", entries: 1 });
    expect(rewritten.cache.status === "written" && rewritten.cache.previousUnreadable).toBeTruthy();
    expect(fresh.logs()).toContain("unreadable");
    expect(await cached({ provider: "infisical", project: "proj", path: "/a", key: "ONE" })).toBe(
      "1",
    );
  });

  it("reports a key that cannot be a Podman name, and a missing or store-only provider", async () => {
    const provider = memoryProvider({ "/a": { "BAD KEY": "x", OK: "y" } });
    const result = await runSetup(
      options(provider, {
        app: { secrets: [src("/a")] },
        vault: { provider: "local" },
        hsm: { provider: "nitrokeyhsm" },
      }),
    );
    expect(result.ok).toBe(false);
    expect(result.workloads[0]).toMatchObject({
      status: "failed",
      created: ["OK"],
      errors: [{ stage: "register", code: "setup.bad_key", secret: "app--BAD KEY" }],
    });
    expect(result.workloads[0]!.dropIn).toBeUndefined();
    expect(result.workloads.slice(1).map((workload) => [workload.name, workload.status])).toEqual([
      ["vault", "store-only"],
      ["hsm", "store-only"],
    ]);

    const none = await runSetup({
      ...options(provider, { app: { secrets: [src("/a")] } }),
      providers: new Map(),
    });
    expect(none.workloads[0]).toMatchObject({
      status: "failed",
      errors: [{ code: "setup.provider_unavailable" }],
    });
    expect(none.cache.status).toBe("skipped");
    await expect(runSetup(options(provider, {}, { provider: "nope" }))).rejects.toThrow(
      'provider "nope" is not configured',
    );
  });

  it("fetches and caches but writes no drop-in when the Podman API is unreachable", async () => {
    const provider = memoryProvider({ "/a": { ONE: "1" } });
    const result = await runSetup(
      options(
        provider,
        { app: { secrets: [src("/a")] } },
        {
          podman: createPodmanClient({ socketPath: join(dir.path, "nothing.sock") }),
        },
      ),
    );
    expect(result.ok).toBe(false);
    expect(result.errors).toEqual([
      expect.objectContaining({ stage: "podman", code: "podman.unreachable" }),
    ]);
    expect(setupFailures(result)).toEqual({
      workloads: 1,
      drift: 0,
      errors: 1,
      cache: 0,
      restarts: 0,
    });
    expect(result.workloads[0]).toMatchObject({ status: "failed", fetched: true });
    expect(result.cache).toMatchObject({ status: "written", entries: 1 });
    await expect(stat(join(systemdDir, "app.container.d"))).rejects.toThrow();
  });
});
