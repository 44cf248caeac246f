import { readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import type { SetupResult } from "@psi/setup";
import { curlAvailable, podmanAvailable } from "@psi/testkit/podman";
import { requireTool } from "@psi/testkit/tmp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  mappingText,
  PROJECT,
  parseSnakeJson,
  type SetupHost,
  startSetupHost,
  type WorkloadSpec,
} from "./setup-host.js";

// `psi setup` end to end (SPEC §9): the real Infisical provider against the fake
// Infisical, registration through a real Podman's REST API, the shell driver calling a
// running `psi serve` (built CLI), and `podman create` resolving the values.

const skip =
  requireTool(podmanAvailable(), "podman", "podman") ||
  requireTool(curlAvailable(), "curl", "curl");

const SECRETS = {
  "/myapp": { DB_HOST: "db.internal", DB_PASSWORD: "pässwörd-1", API_KEY: "api-key-1" },
  "/shared": { SHARED_TOKEN: "shared-token-1", DB_HOST: "shared-db" },
  "/rec": { TOP: "top-value" },
  "/rec/sub": { NESTED: "nested-value" },
};
const VALUES = Object.values(SECRETS).flatMap((entries) => Object.values(entries));

const source = (path: string, recursive?: boolean) => ({
  project: PROJECT.name,
  path,
  ...(recursive === undefined ? {} : { recursive }),
});

const WORKLOADS: Record<string, WorkloadSpec> = {
  myapp: {
    depends_on: ["db.service", "psi-infisical-setup.service"],
    secrets: [source("/shared"), source("/myapp")],
  },
  other: { secrets: [source("/shared")] },
  rec: { secrets: [source("/rec", true)] },
  vault: { provider: "local" },
};

const listRequests = (host: SetupHost) => host.fake.count("GET", "/api/v4/secrets");

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) out.push(join(entry.parentPath, entry.name));
  }
  return out;
}

describe.skipIf(skip)("psi setup against real Podman, psi serve and the fake Infisical", () => {
  let host: SetupHost;

  beforeAll(async () => {
    host = await startSetupHost(SECRETS);
    await host.writeConfig("main", WORKLOADS);
    await host.startServe();
  });
  afterAll(async () => {
    await host?.stop();
  });

  it("registers every merged key through Podman's API; podman create gets the Infisical value through psi serve", async () => {
    const before = listRequests(host);
    const run = await host.setup();
    expect(run.code, run.stderr).toBe(0);
    expect(run.result.ok).toBe(true);
    // /shared is a source of two workloads and is listed once.
    expect(listRequests(host) - before).toBe(3);
    expect(run.result.sources).toEqual({ listed: 3, references: 4, failed: 0 });

    expect(await host.podmanNames()).toEqual([
      "myapp--API_KEY",
      "myapp--DB_HOST",
      "myapp--DB_PASSWORD",
      "myapp--SHARED_TOKEN",
      "other--DB_HOST",
      "other--SHARED_TOKEN",
      "rec--NESTED",
      "rec--TOP",
    ]);
    // Later sources win on a clash: myapp lists /shared, then /myapp.
    expect(await host.lookup("myapp--DB_HOST")).toBe("db.internal");
    expect(await host.lookup("other--DB_HOST")).toBe("shared-db");
    expect(await host.lookup("myapp--DB_PASSWORD")).toBe("pässwörd-1");

    const myapp = run.result.workloads.find((workload) => workload.name === "myapp")!;
    expect(myapp).toMatchObject({
      status: "ok",
      keys: ["API_KEY", "DB_HOST", "DB_PASSWORD", "SHARED_TOKEN"],
      created: ["API_KEY", "DB_HOST", "DB_PASSWORD", "SHARED_TOKEN"],
      dropIn: { written: true },
    });
    expect(run.result.workloads.map((workload) => [workload.name, workload.status])).toEqual([
      ["myapp", "ok"],
      ["other", "ok"],
      ["rec", "ok"],
      ["vault", "store-only"],
    ]);
    expect(run.result.workloads[3]!.note).toContain("psi local store");
    // No systemd tools on the test PATH: a warning, not a failure.
    expect(run.result.daemonReload.status).toBe("unavailable");
    expect(run.result.cache).toMatchObject({ status: "written", entries: 7, pruneApplied: true });
    expect(
      await host.cacheValue({
        provider: "infisical",
        project: "proj",
        path: "/myapp",
        key: "DB_HOST",
      }),
    ).toBe("db.internal");
  });

  it("writes drop-ins with sorted keys and depends_on, only for fetching workloads", async () => {
    expect(await readFile(join(host.systemdDir, "myapp.container.d/50-secrets.conf"), "utf8")).toBe(
      "[Unit]\nAfter=db.service psi-infisical-setup.service\nWants=db.service psi-infisical-setup.service\n\n" +
        "[Container]\n" +
        "Secret=myapp--API_KEY,type=env,target=API_KEY\n" +
        "Secret=myapp--DB_HOST,type=env,target=DB_HOST\n" +
        "Secret=myapp--DB_PASSWORD,type=env,target=DB_PASSWORD\n" +
        "Secret=myapp--SHARED_TOKEN,type=env,target=SHARED_TOKEN\n",
    );
    expect(await readFile(join(host.systemdDir, "other.container.d/50-secrets.conf"), "utf8")).toBe(
      "[Container]\nSecret=other--DB_HOST,type=env,target=DB_HOST\nSecret=other--SHARED_TOKEN,type=env,target=SHARED_TOKEN\n",
    );
    expect(
      (await stat(join(host.systemdDir, "myapp.container.d/50-secrets.conf"))).mode & 0o777,
    ).toBe(0o644);
    await expect(stat(join(host.systemdDir, "vault.container.d"))).rejects.toThrow();
  });

  it("maps recursive sources with each secret's actual path", async () => {
    const id = (
      await host.sandbox.run(["secret", "inspect", "rec--NESTED", "--format", "{{.ID}}"])
    ).stdout.trim();
    expect(await readFile(join(host.stateDir, id), "utf8")).toBe(mappingText("/rec/sub", "NESTED"));
    expect(await host.lookup("rec--NESTED")).toBe("nested-value");
    expect(await host.lookup("rec--TOP")).toBe("top-value");
  });

  it("never writes a secret value in state_dir, the drop-ins or the logs", async () => {
    const run = await host.setup();
    const texts = [run.stdout, run.stderr, host.serveLog()];
    for (const file of [
      ...(await filesUnder(host.stateDir)),
      ...(await filesUnder(host.systemdDir)),
    ]) {
      texts.push(
        (await readFile(file)).toString("latin1"),
        (await readFile(file)).toString("utf8"),
      );
    }
    for (const value of VALUES) for (const text of texts) expect(text).not.toContain(value);
  });

  it("leaves current registrations alone on the next run", async () => {
    const ids = async () =>
      (await host.sandbox.run(["secret", "ls", "--format", "{{.ID}} {{.Name}}"])).stdout
        .split("\n")
        .sort();
    const before = await ids();
    const run = await host.setup();
    expect(run.code).toBe(0);
    const myapp = run.result.workloads.find((workload) => workload.name === "myapp")!;
    expect(myapp.unchanged).toEqual(myapp.keys);
    expect(myapp.created).toEqual([]);
    expect(myapp.dropIn?.written).toBe(false);
    expect(run.result.daemonReload).toEqual({ status: "skipped", reason: "no drop-in changed" });
    expect(await ids()).toEqual(before);
  });

  it("serves from the cache when Infisical is down, across a restart of psi serve", async () => {
    await host.fake.down();
    try {
      await host.stopServe();
      await host.startServe();
      expect(await host.lookup("myapp--DB_PASSWORD")).toBe("pässwörd-1");
      expect(await host.lookup("rec--NESTED")).toBe("nested-value");
    } finally {
      await host.fake.up();
    }
  });

  it("a changed value reaches the running serve after setup, without a restart", async () => {
    expect(await host.lookup("myapp--API_KEY")).toBe("api-key-1");
    host.fake.setSecret({
      projectId: PROJECT.id,
      environment: PROJECT.environment,
      path: "/myapp",
      key: "API_KEY",
      value: "api-key-2",
    });
    const run = await host.setup();
    expect(run.code).toBe(0);
    expect(run.result.cache).toMatchObject({ status: "written", updated: 1, added: 0 });
    expect(await host.lookup("myapp--API_KEY")).toBe("api-key-2");
  });

  it("reports drift with the fix, completes, and exits non-zero", async () => {
    await host.sandbox.createSecret("myapp--STALE", mappingText("/myapp", "STALE"), "shell");
    try {
      const run = await host.setup();
      expect(run.code).toBe(1);
      expect(run.result.ok).toBe(false);
      expect(run.result.drift).toEqual([
        expect.objectContaining({ workload: "myapp", secret: "myapp--STALE", key: "STALE" }),
      ]);
      expect(run.result.drift[0]!.fix).toContain("recursive: true");
      expect(run.result.drift[0]!.fix).toContain("podman secret rm myapp--STALE");
      // Setup still completed: every workload registered, the cache refreshed.
      expect(run.result.workloads.every((workload) => workload.status !== "failed")).toBe(true);
      expect(run.result.cache.status).toBe("written");

      const human = await host.psi(["setup", "--podman-socket", host.sandbox.socketPath]);
      expect(human.code).toBe(1);
    } finally {
      await host.sandbox.run(["secret", "rm", "myapp--STALE"]);
    }
  });

  it("--provider selects the workloads; a store-only provider fetches nothing and keeps the cache", async () => {
    const before = listRequests(host);
    const bytes = await host.cacheBytes();
    const local = await host.setup(["--provider", "local"]);
    expect(local.code).toBe(0);
    expect(local.result.workloads.map((workload) => workload.name)).toEqual(["vault"]);
    expect(local.result.cache.status).toBe("skipped");
    expect(listRequests(host)).toBe(before);
    expect(await host.cacheBytes()).toEqual(bytes);

    const infisical = await host.setup(["--provider", "infisical"]);
    expect(infisical.code).toBe(0);
    expect(infisical.result.workloads.map((workload) => workload.name)).toEqual([
      "myapp",
      "other",
      "rec",
    ]);
    // infisical is the only fetching provider: the run is complete and may prune.
    expect(infisical.result.cache).toMatchObject({ status: "written", pruneApplied: true });

    const raw = await host.psi([
      "setup",
      "--provider",
      "nope",
      "--podman-socket",
      host.sandbox.socketPath,
    ]);
    expect(raw.code).toBe(1);
    expect(raw.stderr).toContain('provider "nope" is not configured');
  });

  it("prunes only after a complete run; a partial run adds and updates", async () => {
    const nested = { provider: "infisical", project: "proj", path: "/rec/sub", key: "NESTED" };
    host.fake.deleteSecret({
      projectId: PROJECT.id,
      environment: PROJECT.environment,
      path: "/rec/sub",
      key: "NESTED",
    });
    host.fake.setSecret({
      projectId: PROJECT.id,
      environment: PROJECT.environment,
      path: "/rec",
      key: "TOP",
      value: "top-value-2",
    });
    const partial = await host.writeConfig("partial", {
      ...WORKLOADS,
      broken: { secrets: [source("/does-not-exist")] },
    });
    const run = await host.setup([], partial);
    expect(run.code).toBe(1);
    expect(run.result.workloads.find((workload) => workload.name === "broken")).toMatchObject({
      status: "failed",
      errors: [expect.objectContaining({ stage: "fetch", code: "provider.not_found" })],
    });
    expect(run.result.cache).toMatchObject({
      status: "written",
      pruneApplied: false,
      pruned: 0,
      updated: 1,
    });
    expect(await host.cacheValue(nested)).toBe("nested-value");
    expect(await host.cacheValue({ ...nested, path: "/rec", key: "TOP" })).toBe("top-value-2");
    expect(run.result.drift.map((drift) => drift.secret)).toEqual(["rec--NESTED"]);

    const full = await host.setup();
    expect(full.result.cache).toMatchObject({
      status: "written",
      pruneApplied: true,
      pruned: 1,
      entries: 6,
    });
    expect(await host.cacheValue(nested)).toBeUndefined();
    await host.sandbox.run(["secret", "rm", "rec--NESTED"]);
    const clean = await host.setup();
    expect(clean.code).toBe(0);
  });

  it("psi cache refresh is setup for every provider", async () => {
    const before = listRequests(host);
    const run = await host.psi(["cache", "refresh", "--podman-socket", host.sandbox.socketPath]);
    expect(run.code, run.stderr).toBe(0);
    const result = parseSnakeJson<SetupResult>(run.stdout);
    expect(result.provider).toBeUndefined();
    // One key style for every --json output: snake_case, as the log lines.
    expect(run.stdout).toContain('"prune_applied": true');
    expect(run.stdout).not.toMatch(/"[a-z]+[A-Z][A-Za-z]*":/);
    expect(result.workloads.map((workload) => workload.name)).toEqual([
      "myapp",
      "other",
      "rec",
      "vault",
    ]);
    expect(result.cache).toMatchObject({ status: "written", pruneApplied: true });
    expect(listRequests(host) - before).toBe(3);
  });

  it("prints a summary and progress on a terminal, JSON with --json anywhere on the line", async () => {
    const human = await host.psi(
      ["setup", "--podman-socket", host.sandbox.socketPath],
      undefined,
      true,
    );
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toMatch(
      /^myapp +ok +4 secrets \(0 new, 0 re-created, 4 current\), drop-in unchanged$/m,
    );
    expect(human.stdout).toMatch(
      /^vault +store-only +secrets of workload vault are created with `psi local store NAME`/m,
    );
    expect(human.stdout).toContain("setup done: 4 workloads, 3 sources listed");
    expect(human.stderr).toContain("setup: sources 3/3");
    for (const value of VALUES) expect(human.stdout + human.stderr).not.toContain(value);

    const json = await host.psi(
      ["setup", "--json", "--podman-socket", host.sandbox.socketPath],
      undefined,
      true,
    );
    expect((JSON.parse(json.stdout) as SetupResult).ok).toBe(true);
  });

  it("template workloads share one drop-in directory, name@.container.d", async () => {
    // Podman 4.3 (Debian 12) refuses '@' in secret names; newer Podman accepts it.
    const probe = await host.sandbox.run(
      ["secret", "create", "--driver", "shell", "probe@--X", "-"],
      mappingText("/", "X"),
    );
    if (probe.code === 0) await host.sandbox.run(["secret", "rm", "probe@--X"]);
    const config = await host.writeConfig("template", {
      ...WORKLOADS,
      "worker@": { secrets: [source("/rec")] },
    });
    const run = await host.setup([], config);
    const worker = run.result.workloads.find((workload) => workload.name === "worker@")!;
    const dropIn = join(host.systemdDir, "worker@.container.d/50-secrets.conf");
    if (probe.code === 0) {
      expect(run.code).toBe(0);
      expect(worker.dropIn?.path).toBe(dropIn);
      expect(await readFile(dropIn, "utf8")).toBe(
        "[Container]\nSecret=worker@--TOP,type=env,target=TOP\n",
      );
    } else {
      expect(run.code).toBe(1);
      expect(worker.status).toBe("failed");
      expect(worker.errors).toEqual([
        expect.objectContaining({
          stage: "register",
          secret: "worker@--TOP",
          message: expect.stringContaining("invalid secret name"),
        }),
      ]);
      // No drop-in naming a secret that does not exist.
      await expect(stat(dropIn)).rejects.toThrow();
    }
  });
});
