import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { importSecrets, loginAll } from "../src/index.js";
import {
  CLIENT_ID,
  CLIENT_SECRET,
  type FakeWorld,
  fakeWorld,
  infisicalConfig,
  PROJECT_ID,
} from "./helpers.js";

let world: FakeWorld;
beforeEach(async () => {
  world = await fakeWorld();
});
afterEach(async () => {
  await world.cleanup();
});

const get = (path: string, key: string) =>
  world.fake.getSecret({ projectId: PROJECT_ID, environment: "prod", path, key });

const VALUES = { A: "alpha-value", B: "bravo-value", C: "charlie-value" };
const items = Object.entries(VALUES).map(([key, value]) => ({ key, value, source: `f:${key}` }));

describe("importSecrets", () => {
  it("creates the folders, batch-creates the keys and reports each", async () => {
    const progress: number[] = [];
    const report = await importSecrets({
      client: world.client(),
      project: "app",
      path: "/team/app/",
      secrets: items,
      conflict: "fail",
      onProgress: ({ done }) => progress.push(done),
    });
    expect(report).toMatchObject({
      ok: true,
      path: "/team/app",
      environment: "prod",
      foldersCreated: ["/team", "/team/app"],
      counts: { created: 3, failed: 0 },
    });
    expect(report.results).toEqual([
      { key: "A", outcome: "created", source: "f:A" },
      { key: "B", outcome: "created", source: "f:B" },
      { key: "C", outcome: "created", source: "f:C" },
    ]);
    expect(progress.at(-1)).toBe(3);
    expect(world.fake.count("POST", "/api/v4/secrets/batch")).toBe(1);
    for (const [key, value] of Object.entries(VALUES)) expect(get("/team/app", key)).toBe(value);
    const text = JSON.stringify(report) + JSON.stringify(world.logger.lines);
    for (const value of Object.values(VALUES)) expect(text).not.toContain(value);
  });

  it("conflict fail writes nothing when a key exists", async () => {
    world.put("/app", "B", "existing");
    const report = await importSecrets({
      client: world.client(),
      project: "app",
      path: "/app",
      secrets: items,
      conflict: "fail",
    });
    expect(report.ok).toBe(false);
    expect(report.results.map((r) => [r.key, r.outcome])).toEqual([
      ["A", "skipped"],
      ["B", "failed"],
      ["C", "skipped"],
    ]);
    expect(report.results[1]?.reason).toContain("exists at /app");
    expect(world.fake.count("POST", "/api/v4/secrets")).toBe(0);
    expect(get("/app", "A")).toBeUndefined();
  });

  it("conflict skip keeps existing keys; overwrite replaces them", async () => {
    world.put("/app", "B", "existing");
    const skip = await importSecrets({
      client: world.client(),
      project: "app",
      path: "/app",
      secrets: items,
      conflict: "skip",
    });
    expect(skip.counts).toMatchObject({ created: 2, skipped: 1 });
    expect(get("/app", "B")).toBe("existing");
    const overwrite = await importSecrets({
      client: world.client(),
      project: "app",
      path: "/app",
      secrets: items,
      conflict: "overwrite",
    });
    expect(overwrite.counts).toMatchObject({ overwritten: 3, created: 0 });
    expect(get("/app", "B")).toBe(VALUES.B);
  });

  it("an imported key of the same name does not count as existing", async () => {
    world.put("/shared", "A", "from-shared");
    world.fake.addImport({
      projectId: PROJECT_ID,
      environment: "prod",
      path: "/app",
      from: { environment: "prod", path: "/shared" },
    });
    const report = await importSecrets({
      client: world.client(),
      project: "app",
      path: "/app",
      secrets: [items[0]!],
      conflict: "fail",
    });
    expect(report.results).toEqual([{ key: "A", outcome: "created", source: "f:A" }]);
    expect(get("/app", "A")).toBe(VALUES.A);
  });

  it("dry run reads and reports, writes nothing", async () => {
    world.put("/app", "B", "existing");
    const report = await importSecrets({
      client: world.client(),
      project: "app",
      path: "/app/new",
      secrets: items,
      conflict: "overwrite",
      dryRun: true,
    });
    expect(report).toMatchObject({ dryRun: true, foldersCreated: ["/app/new"] });
    expect(report.counts).toMatchObject({ created: 3 });
    expect(world.fake.count("POST", "/")).toBe(1); // the login only
    expect(world.fake.count("PATCH", "/")).toBe(0);
    expect(world.fake.folders(PROJECT_ID, "prod")).not.toContain("/app/new");
  });

  it("unreadable and invalid keys fail on their own; the rest is imported", async () => {
    // Every Infisical environment has a root folder; the fake makes it on first use.
    world.fake.addFolder({ projectId: PROJECT_ID, environment: "prod", path: "/" });
    const report = await importSecrets({
      client: world.client(),
      project: "app",
      path: "/",
      secrets: [
        ...items,
        { key: "BAD KEY", value: "x" },
        { key: "LOST", error: "cannot read the value of Podman secret LOST" },
      ],
      conflict: "fail",
    });
    expect(report.ok).toBe(false);
    expect(report.counts).toMatchObject({ created: 3, failed: 2 });
    expect(report.results.find((r) => r.key === "BAD KEY")?.reason).toBe(
      "the key contains whitespace",
    );
  });

  it("a batch Infisical refuses is retried key by key, each with its own outcome", async () => {
    world.fake.addFolder({ projectId: PROJECT_ID, environment: "prod", path: "/app" });
    // Another writer creates B between the listing and the batch: the batch is refused.
    const client = world.client({
      fetch: async (input, init) => {
        if (String(input).includes("/api/v4/secrets/batch")) world.put("/app", "B", "raced");
        return fetch(input, init);
      },
    });
    const report = await importSecrets({
      client,
      project: "app",
      path: "/app",
      secrets: items,
      conflict: "fail",
    });
    expect(report.results.map((r) => [r.key, r.outcome])).toEqual([
      ["A", "created"],
      ["B", "failed"],
      ["C", "created"],
    ]);
    expect(get("/app", "B")).toBe("raced");
  });

  it("an unknown project or a refused login fails every key with the reason", async () => {
    await expect(
      importSecrets({
        client: world.client(),
        project: "nope",
        path: "/",
        secrets: items,
        conflict: "fail",
      }),
    ).rejects.toMatchObject({ code: "provider.unknown_project" });
    const denied = await importSecrets({
      client: world.client(
        {},
        { auth: { method: "universal-auth", client_id: "x", client_secret: "y" } },
      ),
      project: "app",
      path: "/",
      secrets: items,
      conflict: "fail",
    });
    expect(denied.counts.failed).toBe(3);
    expect(denied.results[0]?.reason).toContain("auth failed for project app");
  });
});

describe("loginAll", () => {
  it("logs in once per identity and reports each project, the global auth included", async () => {
    world.fake.addUniversalAuth({ clientId: "own-id", clientSecret: "own-secret" });
    const checks = await loginAll({
      config: infisicalConfig(world.fake, {
        projects: {
          one: {
            id: PROJECT_ID,
            auth: { method: "universal-auth", client_id: "own-id", client_secret: "own-secret" },
          },
          two: {
            id: PROJECT_ID,
            auth: { method: "universal-auth", client_id: "own-id", client_secret: "own-secret" },
          },
          bad: {
            id: PROJECT_ID,
            auth: { method: "universal-auth", client_id: "own-id", client_secret: "wrong" },
          },
        },
      }),
      stateDir: world.stateDir,
    });
    expect(checks.map((c) => [c.project, c.auth, c.ok])).toEqual([
      ["one", "project", true],
      ["two", "project", true],
      ["bad", "project", false],
      [undefined, "global", true],
    ]);
    expect(world.fake.logins("universal-auth")).toBe(2);
    expect(world.fake.count("POST", "/api/v1/auth/universal-auth/login")).toBe(3);
    expect(checks[2]?.error).toMatchObject({ code: "provider.auth_failed" });
    expect(JSON.stringify(checks)).not.toContain(CLIENT_SECRET);
    expect(JSON.stringify(checks)).not.toContain("own-secret");
    expect(CLIENT_ID).toBeTruthy();
  });
});
