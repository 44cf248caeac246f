import { rm } from "node:fs/promises";
import { join } from "node:path";
import { createPodmanClient } from "@psi/podman";
import type { DryRunReport } from "@psi/setup";
import { parseDriverOptions } from "@psi/setup";
import { curlAvailable, podmanAvailable } from "@psi/testkit/podman";
import { requireTool } from "@psi/testkit/tmp";
import { renderDriverConf } from "@psi/unitgen";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  mappingText,
  PROJECT,
  type SetupHost,
  startSetupHost,
  type WorkloadSpec,
} from "./setup-host.js";

// Infisical misbehaving during `psi setup` (SPEC §9, §13): clear errors, exit 1, the old
// cache.enc byte for byte; then the dry run, which talks to Podman and state_dir only.

const skip =
  requireTool(podmanAvailable(), "podman", "podman") ||
  requireTool(curlAvailable(), "curl", "curl");

const source = (path: string, project = PROJECT.name) => ({ project, path });
const WORKLOADS: Record<string, WorkloadSpec> = {
  myapp: { secrets: [source("/shared"), source("/myapp")] },
  other: { secrets: [source("/shared")] },
};
const PROJECT_AT = { projectId: PROJECT.id, environment: "prod" };
const GHOST = { id: "99999999-0000-0000-0000-000000000000", environment: "prod" };

describe.skipIf(skip)("psi setup when Infisical fails, and psi setup --dry-run", () => {
  let host: SetupHost;
  let cacheBefore: Buffer | undefined;

  beforeAll(async () => {
    host = await startSetupHost({
      "/myapp": { DB_HOST: "db.internal", API_KEY: "api-key-1" },
      "/shared": { SHARED_TOKEN: "shared-token-1" },
    });
    await host.writeConfig("main", WORKLOADS, { setup_timeout: 0.3 });
    await host.startServe();
    const first = await host.setup();
    expect(first.code, first.stderr).toBe(0);
    expect(first.result.cache.status, JSON.stringify(first.result)).toBe("written");
    cacheBefore = await host.cacheBytes();
    expect(cacheBefore).toBeDefined();
  });
  afterEach(() => {
    host.fake.fail5xx(null);
    host.fake.slow(0);
  });
  afterAll(async () => {
    await host?.stop();
  });

  async function failedRun(expectCode: string, message: string | RegExp) {
    const run = await host.setup();
    expect(run.code).toBe(1);
    expect(run.result.ok).toBe(false);
    for (const workload of run.result.workloads) {
      expect(workload.status).toBe("failed");
      expect(workload.errors[0]).toMatchObject({
        stage: "fetch",
        code: expectCode,
        message: expect.stringMatching(message),
      });
    }
    expect(run.result.cache.status).toBe("skipped");
    expect(await host.cacheBytes()).toEqual(cacheBefore);
    // The human form says it too, on stdout, with exit 1.
    const human = await host.psi(["setup", "--podman-socket", host.sandbox.socketPath]);
    expect(human.code).toBe(1);
    return run;
  }

  it("500: the status and body in the message, not retried, cache untouched", async () => {
    host.fake.fail5xx(500);
    const before = host.fake.count("GET", "/api/v4/secrets");
    await failedRun("provider.http_error", /HTTP 500/);
    expect(host.fake.count("GET", "/api/v4/secrets") - before).toBe(4);
  });

  it("401: auth failed for the project, not retried, cache untouched", async () => {
    host.fake.fail5xx(401);
    const before = host.fake.count("GET", "/api/v4/secrets");
    await failedRun("provider.auth_failed", /auth failed for project proj/);
    // At most one listing per unique source (the second run fails at login): no retries.
    const listed = host.fake.count("GET", "/api/v4/secrets") - before;
    expect(listed).toBeGreaterThan(0);
    expect(listed).toBeLessThanOrEqual(2);
  });

  it("503 is retried with the configured delays, then the run succeeds", async () => {
    host.fake.fail5xx(503, 2);
    const run = await host.setup();
    expect(run.code, run.stderr).toBe(0);
    // retry_delays 0.05 s, jittered over [0.75, 1.25) of itself.
    expect(run.stderr).toMatch(/retrying in 0\.0(3[89]|[45]\d|6[0-2])\d* s/);
    cacheBefore = await host.cacheBytes();
  });

  it("hanging: bounded by setup_timeout, retried, then a clear error; cache untouched", async () => {
    host.fake.slow(5_000);
    await failedRun("provider.timeout", /did not answer within 0\.3 s/);
  });

  it("down: cannot reach Infisical, cache untouched", async () => {
    await host.fake.down();
    try {
      await failedRun("provider.unreachable", /cannot reach Infisical at http:\/\/127\.0\.0\.1/);
    } finally {
      await host.fake.up();
    }
  });

  it("a source with a missing path or an unknown project fails its workload only", async () => {
    const config = await host.writeConfig(
      "broken",
      {
        ...WORKLOADS,
        nopath: { secrets: [source("/myapp"), source("/no/such/path")] },
        ghost: { secrets: [source("/myapp", "ghost")] },
      },
      {
        setup_timeout: 0.3,
        projects: { [PROJECT.name]: { id: PROJECT.id, environment: "prod" }, ghost: GHOST },
      },
    );
    const run = await host.setup([], config);
    expect(run.code).toBe(1);
    const status = Object.fromEntries(
      run.result.workloads.map((workload) => [workload.name, workload.status]),
    );
    expect(status).toEqual({ myapp: "ok", other: "ok", nopath: "failed", ghost: "failed" });
    const nopath = run.result.workloads.find((workload) => workload.name === "nopath")!;
    expect(nopath.errors).toEqual([
      expect.objectContaining({
        code: "provider.not_found",
        source: { project: "proj", path: "/no/such/path", recursive: false },
        message: expect.stringContaining("/no/such/path"),
      }),
    ]);
    expect(nopath.dropIn).toBeUndefined();
    // Partial, and nothing new from the workloads that worked: the file is not rewritten.
    expect(run.result.cache.status).toBe("unchanged");
    expect(await host.cacheBytes()).toEqual(cacheBefore);
    expect(await host.podmanNames()).not.toContain("nopath--DB_HOST");
  });

  it("an empty 200 for a mistyped path, or an emptied folder, keeps the workload's secrets until --allow-empty", async () => {
    const myapp = { provider: "infisical", project: PROJECT.name, path: "/myapp", key: "DB_HOST" };
    // Some self-hosted versions answer a missing folder with an empty 200, not 404.
    host.fake.emptyForMissingFolder(true);
    try {
      const typo = await host.writeConfig(
        "typo",
        { ...WORKLOADS, myapp: { secrets: [source("/shared"), source("/myap")] } },
        { setup_timeout: 0.3 },
      );
      const run = await host.setup([], typo);
      expect(run.code).toBe(1);
      const workload = run.result.workloads.find((entry) => entry.name === "myapp")!;
      expect(workload).toMatchObject({ status: "failed", kept: ["API_KEY", "DB_HOST"] });
      expect(workload.errors).toEqual([
        expect.objectContaining({
          code: "setup.empty_source",
          hint: expect.stringContaining("--allow-empty"),
        }),
      ]);
      expect(run.result.drift).toEqual([]);
      expect(await host.cacheValue(myapp)).toBe("db.internal");
      // Infisical down: the kept value still reaches the container from the cache.
      await host.fake.down();
      try {
        expect(await host.lookup("myapp--DB_HOST")).toBe("db.internal");
      } finally {
        await host.fake.up();
      }
    } finally {
      host.fake.emptyForMissingFolder(false);
    }

    // The folder was emptied: both workloads that list it keep their secret.
    host.fake.deleteSecret({ ...PROJECT_AT, path: "/shared", key: "SHARED_TOKEN" });
    try {
      const emptied = await host.setup();
      expect(emptied.code).toBe(1);
      expect(
        emptied.result.workloads.map((entry) => [entry.name, entry.status, entry.kept]),
      ).toEqual([
        ["myapp", "failed", ["SHARED_TOKEN"]],
        ["other", "failed", ["SHARED_TOKEN"]],
      ]);
      const token = {
        provider: "infisical",
        project: PROJECT.name,
        path: "/shared",
        key: "SHARED_TOKEN",
      };
      expect(await host.cacheValue(token)).toBe("shared-token-1");
      // Confirmed: pruned (and left to drift's fix).
      const allowed = await host.setup(["--allow-empty"]);
      expect(allowed.result.workloads.every((entry) => entry.kept.length === 0)).toBe(true);
      expect(allowed.result.cache).toMatchObject({ status: "written", pruned: 1 });
      expect(await host.cacheValue(token)).toBeUndefined();
    } finally {
      host.fake.setSecret({
        ...PROJECT_AT,
        path: "/shared",
        key: "SHARED_TOKEN",
        value: "shared-token-1",
      });
    }
    const restored = await host.setup();
    expect(restored.code, restored.stderr).toBe(0);
    cacheBefore = await host.cacheBytes();
  });

  it("--dry-run classifies managed, stale-opts and orphaned secrets and drop-in gaps, touching only Podman", async () => {
    const podman = createPodmanClient({ socketPath: host.sandbox.socketPath });
    const current = parseDriverOptions(renderDriverConf({ socket: host.socket }));
    // As if created before the socket token was rotated: lookup differs.
    await podman.createSecret("manual--OLD_OPTS", Buffer.from(mappingText("/myapp", "API_KEY")), {
      driverOptions: {
        ...current,
        lookup: current["lookup"]!.replace("curl -sf", "curl -sf -H 'X-Old: 1'"),
      },
    });
    const orphan = await podman.createSecret(
      "manual--ORPHAN",
      Buffer.from(mappingText("/myapp", "DB_HOST")),
    );
    await rm(join(host.stateDir, orphan.id));
    await podman.deleteSecret("other--SHARED_TOKEN");
    await podman.createSecret("myapp--EXTRA", Buffer.from(mappingText("/myapp", "EXTRA")));
    const requests = host.fake.requests.length;
    const cache = await host.cacheBytes();

    const run = await host.psi(["setup", "--dry-run", "--podman-socket", host.sandbox.socketPath]);
    expect(run.code, run.stderr).toBe(0);
    const report = JSON.parse(run.stdout) as DryRunReport;
    const classes = Object.fromEntries(report.secrets.map((secret) => [secret.name, secret.class]));
    expect(classes).toEqual({
      "manual--OLD_OPTS": "stale-opts",
      "manual--ORPHAN": "orphaned",
      "myapp--API_KEY": "managed",
      "myapp--DB_HOST": "managed",
      "myapp--EXTRA": "managed",
      "myapp--SHARED_TOKEN": "managed",
      "other--SHARED_TOKEN": undefined,
    } as Record<string, string | undefined>);
    expect(
      report.secrets.find((secret) => secret.name === "manual--OLD_OPTS")?.differingOptions,
    ).toEqual(["lookup"]);
    expect(report.counts).toEqual({ managed: 4, staleOpts: 1, orphaned: 1 });
    expect(report.workloads).toEqual([
      expect.objectContaining({
        name: "myapp",
        dropInExists: true,
        missingFromDropIn: ["myapp--EXTRA"],
        missingInPodman: [],
      }),
      expect.objectContaining({
        name: "other",
        dropInExists: true,
        missingFromDropIn: [],
        missingInPodman: ["other--SHARED_TOKEN"],
      }),
    ]);
    expect(report.clean).toBe(false);

    const table = await host.psi(
      ["setup", "--dry-run", "--podman-socket", host.sandbox.socketPath],
      undefined,
      true,
    );
    expect(table.stdout).toMatch(/^SECRET +ID +CLASS +WORKLOAD$/m);
    expect(table.stdout).toMatch(/^manual--OLD_OPTS +[0-9a-f]{25} +stale-opts \(lookup\) +-$/m);
    expect(table.stdout).toMatch(/^other +present +- +other--SHARED_TOKEN$/m);
    expect(table.stdout).toContain("4 managed, 1 stale-opts");
    expect(host.fake.requests.length).toBe(requests);
    expect(await host.cacheBytes()).toEqual(cache);
  });
});
