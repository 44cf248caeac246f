import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type FakeWorld, fakeWorld, PROJECT_ID } from "./helpers.js";

let world: FakeWorld;
beforeEach(async () => {
  world = await fakeWorld();
});
afterEach(async () => {
  await world.cleanup();
});

const byKey = <T extends { key: string }>(items: T[]) =>
  [...items].sort((a, b) => a.key.localeCompare(b.key));

describe("listSecrets", () => {
  it("lists one folder, or every folder below it with recursive, each with its own path", async () => {
    world.put("/app", "A", "a-value");
    world.put("/app/db", "B", "b-value");
    world.put("/other", "C", "c-value");
    const client = world.client();
    expect(await client.listSecrets({ project: "app", path: "/app" })).toEqual([
      { key: "A", value: "a-value", path: "/app" },
    ]);
    expect(
      byKey(await client.listSecrets({ project: "app", path: "/app/", recursive: true })),
    ).toEqual([
      { key: "A", value: "a-value", path: "/app" },
      { key: "B", value: "b-value", path: "/app/db" },
    ]);
    const request = world.fake.requests.find((r) => r.path === "/api/v4/secrets");
    expect(request?.query).toMatchObject({
      projectId: PROJECT_ID,
      environment: "prod",
      secretPath: "/app",
      recursive: "false",
      viewSecretValue: "true",
      expandSecretReferences: "true",
      include_imports: "true",
      includeImports: "true",
    });
  });

  it("counts imported secrets; local keys win; among imports the later one wins", async () => {
    world.put("/app", "SHARED", "local");
    world.put("/app", "ONLY_LOCAL", "l");
    world.put("/common", "SHARED", "from-common");
    world.put("/common", "FROM_COMMON", "c");
    world.put("/common", "BOTH_IMPORTS", "first-import");
    world.put("/", "BOTH_IMPORTS", "second-import", "staging");
    world.put("/", "CROSS_ENV", "staging-value", "staging");
    world.fake.addImport({
      projectId: PROJECT_ID,
      environment: "prod",
      path: "/app",
      from: { environment: "prod", path: "/common" },
    });
    world.fake.addImport({
      projectId: PROJECT_ID,
      environment: "prod",
      path: "/app",
      from: { environment: "staging", path: "/" },
    });
    const listed = byKey(await world.client().listSecrets({ project: "app", path: "/app" }));
    expect(listed).toEqual([
      {
        key: "BOTH_IMPORTS",
        value: "second-import",
        path: "/app",
        importedFrom: { environment: "staging", path: "/" },
      },
      {
        key: "CROSS_ENV",
        value: "staging-value",
        path: "/app",
        importedFrom: { environment: "staging", path: "/" },
      },
      {
        key: "FROM_COMMON",
        value: "c",
        path: "/app",
        importedFrom: { environment: "prod", path: "/common" },
      },
      { key: "ONLY_LOCAL", value: "l", path: "/app" },
      { key: "SHARED", value: "local", path: "/app" },
    ]);
  });

  it("gives every imported secret a path at which getSecret finds the same value", async () => {
    world.put("/app", "LOCAL", "l");
    world.put("/common", "SAME_ENV", "same");
    world.put("/", "OTHER_ENV", "other", "staging");
    world.fake.addImport({
      projectId: PROJECT_ID,
      environment: "prod",
      path: "/app",
      from: { environment: "prod", path: "/common" },
    });
    world.fake.addImport({
      projectId: PROJECT_ID,
      environment: "prod",
      path: "/app",
      from: { environment: "staging", path: "/" },
    });
    const client = world.client();
    const listed = await client.listSecrets({ project: "app", path: "/app" });
    expect(listed).toHaveLength(3);
    for (const secret of listed) {
      expect(await client.getSecret({ project: "app", path: secret.path, key: secret.key })).toBe(
        secret.value,
      );
    }
  });

  it("maps imports of a recursive listing to the folder that imports them, so a lookup finds them", async () => {
    world.put("/app", "LOCAL", "l");
    world.put("/app/api/v1", "DEEP", "d");
    world.put("/", "OTHER_ENV", "staging-value", "staging");
    world.put("/shared", "SAME_ENV", "s");
    world.put("/shared", "SHADOWED", "from-shared");
    world.put("/app/api", "SHADOWED", "local-api");
    world.fake.addFolder({ projectId: PROJECT_ID, environment: "prod", path: "/app/only-imports" });
    world.fake.addImport({
      projectId: PROJECT_ID,
      environment: "prod",
      path: "/app/only-imports",
      from: { environment: "staging", path: "/" },
    });
    world.fake.addImport({
      projectId: PROJECT_ID,
      environment: "prod",
      path: "/app/api",
      from: { environment: "prod", path: "/shared" },
    });
    const client = world.client();
    const listed = byKey(
      await client.listSecrets({ project: "app", path: "/app", recursive: true }),
    );
    expect(listed.map(({ key, path }) => [key, path])).toEqual([
      ["DEEP", "/app/api/v1"],
      ["LOCAL", "/app"],
      ["OTHER_ENV", "/app/only-imports"],
      ["SAME_ENV", "/app/api"],
      ["SHADOWED", "/app/api"],
    ]);
    for (const secret of listed) {
      expect(await client.getSecret({ project: "app", path: secret.path, key: secret.key })).toBe(
        secret.value,
      );
    }
    // Without imports a recursive listing costs one request, as before.
    const before = world.fake.requests.length;
    world.fake.addFolder({ projectId: PROJECT_ID, environment: "prod", path: "/plain" });
    world.put("/plain", "P", "p");
    await client.listSecrets({ project: "app", path: "/plain", recursive: true });
    expect(world.fake.requests.length - before).toBe(1);
  });

  it("follows imports of imports and cross-project imports to a path where a lookup finds them", async () => {
    world.put("/base", "BASE", "b");
    world.fake.setSecret({
      projectId: "other-project",
      environment: "prod",
      path: "/x",
      key: "FOREIGN",
      value: "f",
    });
    world.fake.addImport({
      projectId: PROJECT_ID,
      environment: "prod",
      path: "/mid",
      from: { environment: "prod", path: "/base" },
    });
    world.fake.addImport({
      projectId: PROJECT_ID,
      environment: "prod",
      path: "/app",
      from: { environment: "prod", path: "/mid" },
    });
    world.fake.addImport({
      projectId: PROJECT_ID,
      environment: "prod",
      path: "/app",
      from: { projectId: "other-project", environment: "prod", path: "/x" },
    });
    const client = world.client();
    const listed = byKey(await client.listSecrets({ project: "app", path: "/app" }));
    expect(listed.map(({ key, path, value }) => [key, path, value])).toEqual([
      ["BASE", "/app", "b"],
      ["FOREIGN", "/app", "f"],
    ]);
    for (const secret of listed) {
      expect(await client.getSecret({ project: "app", path: secret.path, key: secret.key })).toBe(
        secret.value,
      );
    }
  });

  it("reports a reference Infisical cannot expand as such, not as failed auth", async () => {
    world.put("/app", "URL", ["pg://", "$", "{staging.cfg.PASSWORD}"].join(""));
    world.put("/cfg", "PASSWORD", "pw", "staging");
    world.fake.denyRead({ projectId: PROJECT_ID, environment: "staging", path: "/cfg" });
    const client = world.client();
    const listing = await client
      .listSecrets({ project: "app", path: "/app" })
      .catch((error: unknown) => error);
    expect(listing).toMatchObject({ code: "provider.reference_unexpandable", status: 403 });
    expect((listing as Error).message).toContain("secret 'PASSWORD' in environment 'staging'");
    expect((listing as Error).message).not.toContain("auth failed");
    const lookup = await client
      .getSecret({ project: "app", path: "/app", key: "URL" })
      .catch((error: unknown) => error);
    expect(lookup).toMatchObject({ code: "provider.reference_unexpandable" });
    expect((lookup as { hint: string }).hint).toContain("read access");
    // A plain 403 is still failed auth.
    world.fake.denyRead({ projectId: PROJECT_ID, environment: "prod", path: "/app" });
    await expect(client.listSecrets({ project: "app", path: "/app" })).rejects.toMatchObject({
      code: "provider.auth_failed",
    });
  });

  it("fails with the path when the folder does not exist", async () => {
    const error = await world
      .client()
      .listSecrets({ project: "app", path: "/missing" })
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "provider.not_found", status: 404 });
    expect((error as Error).message).toMatch(
      /^Infisical answered HTTP 404 to GET \/api\/v4\/secrets: .*\/missing/,
    );
  });
});

describe("getSecret", () => {
  it("returns the value (multi-line, unicode) unchanged", async () => {
    const value = "line one\nzwei — drei 😀";
    world.put("/app", "MULTI", value);
    expect(await world.client().getSecret({ project: "app", path: "/app", key: "MULTI" })).toBe(
      value,
    );
  });

  it("says which secret is missing where", async () => {
    world.put("/app", "A", "a");
    const error = await world
      .client()
      .getSecret({ project: "app", path: "/app/", key: "NOPE" })
      .catch((e: unknown) => e);
    expect(error).toMatchObject({
      code: "provider.not_found",
      status: 404,
      message: "secret NOPE not found at path /app in project app",
    });
  });

  it("refuses a value Infisical hides from the identity instead of returning the placeholder", async () => {
    world.put("/app", "A", "a");
    const client = world.client({
      fetch: (input, init) => {
        const url = new URL(String(input));
        url.searchParams.set("viewSecretValue", "false");
        return fetch(url, init);
      },
    });
    const error = await client
      .getSecret({ project: "app", path: "/app", key: "A" })
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "provider.value_hidden" });
  });
});

describe("errors of §8.1", () => {
  it("cannot reach Infisical at <url> when it is down", async () => {
    world.put("/app", "A", "a");
    await world.fake.down();
    const error = await world
      .client()
      .getSecret({ project: "app", path: "/app", key: "A" })
      .catch((e: unknown) => e);
    expect(error).toMatchObject({
      code: "provider.unreachable",
      message: `cannot reach Infisical at ${world.fake.url}`,
    });
    expect((error as { hint: string }).hint).toContain("ECONNREFUSED");
  });

  it("a bounded timeout when Infisical hangs (lookup_timeout for lookups)", async () => {
    world.put("/app", "A", "a");
    const client = world.client({}, { lookup_timeout: 0.2, setup_timeout: 5 });
    await client.token("app");
    world.fake.slow(2000);
    const error = await client
      .getSecret({ project: "app", path: "/app", key: "A" }, { purpose: "lookup" })
      .catch((e: unknown) => e);
    expect(error).toMatchObject({
      code: "provider.timeout",
      message: `Infisical at ${world.fake.url} did not answer within 0.2 s`,
    });
  });

  it("status and the first 200 characters of the body for other answers", async () => {
    world.put("/app", "A", "a");
    const client = world.client();
    await client.token("app");
    world.fake.fail5xx(500);
    const error = await client
      .getSecret({ project: "app", path: "/app", key: "A" })
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "provider.http_error", status: 500 });
    expect((error as Error).message).toMatch(
      /^Infisical answered HTTP 500 to GET \/api\/v4\/secrets\/\{key\}: \{"reqId":/,
    );
  });

  it("cuts a long error body at 200 characters", async () => {
    const long = "x".repeat(500);
    const client = world.client({
      fetch: async (input, init) => {
        if (String(input).includes("/login")) return fetch(input, init);
        return new Response(long, { status: 418 });
      },
    });
    const error = (await client
      .getSecret({ project: "app", path: "/", key: "A" })
      .catch((e: unknown) => e)) as Error;
    expect(error.message.endsWith(`: ${"x".repeat(200)}`)).toBe(true);
  });

  it("no secret value or token appears in any error or log line", async () => {
    const value = "s3cr3t-value-never-logged";
    world.put("/app", "A", value);
    const client = world.client();
    const token = await client.token("app");
    await client.listSecrets({ project: "app", path: "/app" });
    world.fake.fail5xx(502);
    const error = (await client
      .listSecrets({ project: "app", path: "/app" })
      .catch((e: unknown) => e)) as Error;
    const everything = JSON.stringify([
      error.message,
      (error as { hint?: string }).hint,
      world.logger.lines,
    ]);
    expect(everything).not.toContain(value);
    expect(everything).not.toContain(token);
  });
});
