import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdir, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type FakeCloudMetadata, startFakeCloudMetadata } from "@psi/testkit/fake-infisical";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { tokenCacheFileName } from "../src/index.js";
import { CLIENT_SECRET, type FakeWorld, fakeWorld, PROJECT_ID } from "./helpers.js";

const JWT_KEY = "fake-jwt-signing-key";
const AWS = {
  accessKeyId: "AKIAPSITEST",
  secretAccessKey: "aws-secret-key-value",
  sessionToken: "aws-session-token",
};

let world: FakeWorld;
let meta: FakeCloudMetadata;

beforeEach(async () => {
  world = await fakeWorld();
  meta = await startFakeCloudMetadata({
    jwtKey: JWT_KEY,
    aws: AWS,
    ecsAuthorization: "ecs-auth-token",
  });
  world.put("/app", "DB_HOST", "db.internal");
});
afterEach(async () => {
  await meta.stop();
  await world.cleanup();
});

const expectedCacheName = (text: string) =>
  `.token.${createHash("sha256").update(text).digest("hex").slice(0, 12)}.json`;

/** Every log line, serialized: secrets and tokens must never be in it. */
const logText = () => JSON.stringify(world.logger.lines);

describe("universal-auth and the token cache", () => {
  it("logs in once, writes the SPEC §8.1 cache file (0600) and reuses it from a new client", async () => {
    const first = world.client();
    expect(await first.getSecret({ project: "app", path: "/app", key: "DB_HOST" })).toBe(
      "db.internal",
    );
    const name = expectedCacheName("universal-auth::ua-client-id");
    expect(
      tokenCacheFileName({
        method: "universal-auth",
        client_id: "ua-client-id",
        client_secret: "x",
      }),
    ).toBe(name);
    const file = join(world.stateDir, name);
    const text = await readFile(file, "utf8");
    expect(text).toMatch(/^\{"access_token": "fake-[0-9a-f]+", "expires_at": \d+\.\d+\}$/);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    const second = world.client();
    expect(await second.getSecret({ project: "app", path: "/app", key: "DB_HOST" })).toBe(
      "db.internal",
    );
    expect(world.fake.logins("universal-auth")).toBe(1);
    const token = (JSON.parse(text) as { access_token: string }).access_token;
    expect(logText()).not.toContain(token);
    expect(logText()).not.toContain(CLIENT_SECRET);
  });

  it("reads a token file the reference wrote (integer or float expires_at)", async () => {
    const token = world.fake.issueToken("ua-identity");
    const file = join(world.stateDir, expectedCacheName("universal-auth::ua-client-id"));
    await writeFile(
      file,
      JSON.stringify({ access_token: token, expires_at: Math.floor(Date.now() / 1000) + 60 }),
      { mode: 0o600 },
    );
    expect(await world.client().getSecret({ project: "app", path: "/app", key: "DB_HOST" })).toBe(
      "db.internal",
    );
    expect(world.fake.logins()).toBe(0);
  });

  it("caps the TTL at token.ttl and logs in again once the cached token expired", async () => {
    let clock = 1_700_000_000_000;
    const client = world.client({ now: () => clock }, { token: { ttl: 50 } });
    await client.token("app");
    const file = join(world.stateDir, expectedCacheName("universal-auth::ua-client-id"));
    const cached = JSON.parse(await readFile(file, "utf8")) as { expires_at: number };
    expect(cached.expires_at).toBe(1_700_000_000 + 50);
    clock += 49_000;
    await client.token("app");
    expect(world.fake.logins()).toBe(1);
    clock += 2_000;
    await client.token("app");
    expect(world.fake.logins()).toBe(2);
  });

  it("uses Infisical's expiresIn when it is below token.ttl", async () => {
    await world.cleanup();
    world = await fakeWorld({ expiresIn: 20 });
    const client = world.client({ now: () => 1_000_000 });
    await client.token("app");
    const file = join(world.stateDir, expectedCacheName("universal-auth::ua-client-id"));
    expect((JSON.parse(await readFile(file, "utf8")) as { expires_at: number }).expires_at).toBe(
      1_000 + 20,
    );
  });

  it("logs in again when the cache file is unreadable", async () => {
    const file = join(world.stateDir, expectedCacheName("universal-auth::ua-client-id"));
    await writeFile(file, "{not json", { mode: 0o600 });
    await world.client().token("app");
    expect(world.fake.logins()).toBe(1);
    expect(await readFile(file, "utf8")).toMatch(/^\{"access_token": /);
  });

  it("logs in again, without blocking, when a FIFO or a symlink is in place of the token file", async () => {
    const file = join(world.stateDir, expectedCacheName("universal-auth::ua-client-id"));
    execFileSync("mkfifo", [file]);
    // before, reading the FIFO waited for a writer that never came
    await world.client().token("app");
    expect(world.fake.logins()).toBe(1);
    const elsewhere = join(world.stateDir, "elsewhere.json");
    await writeFile(
      elsewhere,
      JSON.stringify({
        access_token: world.fake.issueToken("ua-identity"),
        expires_at: Math.floor(Date.now() / 1000) + 60,
      }),
    );
    await rm(file);
    await symlink(elsewhere, file);
    await world.client().token("app");
    expect(world.fake.logins()).toBe(2);
  });

  it("logs in once more when Infisical refuses the cached token with 401", async () => {
    const client = world.client();
    await client.token("app");
    world.fake.expireTokens();
    expect(await client.getSecret({ project: "app", path: "/app", key: "DB_HOST" })).toBe(
      "db.internal",
    );
    expect(world.fake.logins()).toBe(2);
    // A fresh client reads the rewritten file: no third login.
    await world.client().getSecret({ project: "app", path: "/app", key: "DB_HOST" });
    expect(world.fake.logins()).toBe(2);
  });

  it("shares one login between concurrent requests", async () => {
    const client = world.client();
    await Promise.all(
      Array.from({ length: 8 }, () =>
        client.getSecret({ project: "app", path: "/app", key: "DB_HOST" }),
      ),
    );
    expect(world.fake.logins()).toBe(1);
  });

  it("says auth failed for the project on wrong credentials, without the secret", async () => {
    const client = world.client(
      {},
      {
        auth: {
          method: "universal-auth",
          client_id: "ua-client-id",
          client_secret: "wrong-secret-xyz",
        },
      },
    );
    const error = await client
      .getSecret({ project: "app", path: "/app", key: "DB_HOST" })
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "provider.auth_failed", status: 401 });
    expect((error as Error).message).toMatch(/^auth failed for project app/);
    expect((error as Error).message).not.toContain("wrong-secret-xyz");
  });

  it("says auth failed when a request is refused after a fresh login", async () => {
    const client = world.client();
    await client.token("app");
    world.fake.fail5xx(401);
    const error = await client
      .getSecret({ project: "app", path: "/app", key: "DB_HOST" })
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "provider.auth_failed" });
    expect((error as Error).message).toMatch(/^auth failed for project app/);
  });

  it("says auth failed on 403 (identity without access to the project)", async () => {
    world.fake.addUniversalAuth({
      clientId: "limited",
      clientSecret: "limited-secret",
      projects: ["another-project"],
    });
    const client = world.client(
      {},
      { auth: { method: "universal-auth", client_id: "limited", client_secret: "limited-secret" } },
    );
    const error = await client
      .getSecret({ project: "app", path: "/app", key: "DB_HOST" })
      .catch((e: unknown) => e);
    expect(error).toMatchObject({
      code: "provider.auth_failed",
      status: 403,
      message: expect.stringMatching(/^auth failed for project app/),
    });
  });
});

describe("aws-iam", () => {
  const awsConfig = (extra: Record<string, unknown> = {}) => ({
    auth: { method: "aws-iam", identity_id: "aws-identity" },
    endpoints: { aws_metadata: meta.url, aws_ecs_metadata: meta.url },
    ...extra,
  });

  beforeEach(() => {
    world.fake.addIdentity({ method: "aws-auth", identityId: "aws-identity" });
    world.fake.addAwsKey(AWS.accessKeyId, AWS.secretAccessKey, AWS.sessionToken);
  });

  it("signs GetCallerIdentity with credentials from the environment", async () => {
    const env = {
      AWS_ACCESS_KEY_ID: AWS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: AWS.secretAccessKey,
      AWS_SESSION_TOKEN: AWS.sessionToken,
    };
    const client = world.client({ env }, awsConfig());
    expect(await client.getSecret({ project: "app", path: "/app", key: "DB_HOST" })).toBe(
      "db.internal",
    );
    const login = world.fake.requests.find((r) => r.path === "/api/v1/auth/aws-auth/login");
    const body = login?.body as Record<string, string>;
    expect(body["identityId"]).toBe("aws-identity");
    expect(body["iamHttpRequestMethod"]).toBe("POST");
    expect(Buffer.from(body["iamRequestUrl"]!, "base64").toString()).toBe(
      "https://sts.amazonaws.com/",
    );
    expect(Buffer.from(body["iamRequestBody"]!, "base64").toString()).toBe(
      "Action=GetCallerIdentity&Version=2011-06-15",
    );
    const headers = JSON.parse(
      Buffer.from(body["iamRequestHeaders"]!, "base64").toString(),
    ) as Record<string, string>;
    expect(headers["Authorization"]).toMatch(
      /^AWS4-HMAC-SHA256 Credential=AKIAPSITEST\/\d{8}\/us-east-1\/sts\/aws4_request/,
    );
    expect(headers["X-Amz-Security-Token"]).toBe(AWS.sessionToken);
    expect(meta.requests).toHaveLength(0);
    const cache = join(world.stateDir, expectedCacheName("aws-iam:aws-identity:"));
    expect((await stat(cache)).isFile()).toBe(true);
  });

  it("reads the shared credentials file of AWS_PROFILE", async () => {
    await mkdir(join(world.stateDir, "home", ".aws"), { recursive: true });
    await writeFile(
      join(world.stateDir, "home", ".aws", "credentials"),
      `[default]\naws_access_key_id = WRONG\naws_secret_access_key = wrong\n\n[psi]\naws_access_key_id = ${AWS.accessKeyId}\naws_secret_access_key = ${AWS.secretAccessKey}\naws_session_token = ${AWS.sessionToken}\n`,
    );
    const client = world.client(
      {
        env: {
          HOME: join(world.stateDir, "home"),
          AWS_PROFILE: "psi",
          AWS_EC2_METADATA_DISABLED: "true",
        },
      },
      awsConfig(),
    );
    expect(await client.getSecret({ project: "app", path: "/app", key: "DB_HOST" })).toBe(
      "db.internal",
    );
  });

  it("reads AWS_SHARED_CREDENTIALS_FILE and a [profile x] section of the config file", async () => {
    const creds = join(world.stateDir, "creds.ini");
    await writeFile(creds, `[other]\naws_access_key_id = X\naws_secret_access_key = y\n`);
    const config = join(world.stateDir, "config.ini");
    await writeFile(
      config,
      `[profile psi]\nregion = eu-west-1\naws_access_key_id = ${AWS.accessKeyId}\naws_secret_access_key = ${AWS.secretAccessKey}\naws_session_token = ${AWS.sessionToken}\n`,
    );
    const env = {
      AWS_SHARED_CREDENTIALS_FILE: creds,
      AWS_CONFIG_FILE: config,
      AWS_PROFILE: "psi",
      HOME: "/nonexistent",
    };
    expect(await world.client({ env }, awsConfig()).token("app")).toMatch(/^fake-/);
  });

  it("gets credentials from the ECS container endpoint (relative and full URI)", async () => {
    const relative = world.client(
      {
        env: { HOME: "/nonexistent", AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: meta.ecsRelativeUri },
      },
      awsConfig(),
    );
    expect(await relative.token("app")).toMatch(/^fake-/);
    expect(meta.requests.map((r) => r.path)).toEqual(["/v2/credentials/psi-test"]);
    world.client().reset();
    const full = world.client(
      {
        env: {
          HOME: "/nonexistent",
          AWS_CONTAINER_CREDENTIALS_FULL_URI: `${meta.url}/ecs-full/credentials`,
          AWS_CONTAINER_AUTHORIZATION_TOKEN: "ecs-auth-token",
        },
      },
      awsConfig({ token: { ttl: 300 } }),
    );
    await full.login("app");
    expect(meta.requests.at(-1)?.headers.authorization).toBe("ecs-auth-token");
  });

  it("falls back to EC2 IMDSv2 (session token, role, credentials)", async () => {
    const client = world.client({ env: { HOME: "/nonexistent" } }, awsConfig());
    expect(await client.getSecret({ project: "app", path: "/app", key: "DB_HOST" })).toBe(
      "db.internal",
    );
    expect(meta.requests.map((r) => `${r.method} ${r.path}`)).toEqual([
      "PUT /latest/api/token",
      "GET /latest/meta-data/iam/security-credentials/",
      "GET /latest/meta-data/iam/security-credentials/psi-test-role",
    ]);
  });

  it("fails with auth failed when no credentials exist anywhere", async () => {
    const client = world.client(
      { env: { HOME: "/nonexistent", AWS_EC2_METADATA_DISABLED: "true" } },
      awsConfig(),
    );
    const error = await client.token("app").catch((e: unknown) => e);
    expect(error).toMatchObject({
      code: "provider.auth_failed",
      message: "auth failed for project app: no AWS credentials found",
    });
  });

  it("is refused when the signature does not match (unknown key)", async () => {
    const env = { AWS_ACCESS_KEY_ID: "AKIAOTHER", AWS_SECRET_ACCESS_KEY: "other" };
    const error = await world
      .client({ env }, awsConfig())
      .token("app")
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "provider.auth_failed", status: 401 });
  });
});

describe("gcp and azure", () => {
  it("gcp: sends the metadata server's identity JWT for audience=identity_id", async () => {
    await world.cleanup();
    world = await fakeWorld({ jwtKey: JWT_KEY });
    world.fake.addIdentity({ method: "gcp-auth", identityId: "gcp-identity" });
    world.put("/app", "DB_HOST", "db.internal");
    const client = world.client(
      {},
      {
        auth: { method: "gcp", identity_id: "gcp-identity" },
        endpoints: { gcp_metadata: meta.url },
      },
    );
    expect(await client.getSecret({ project: "app", path: "/app", key: "DB_HOST" })).toBe(
      "db.internal",
    );
    const request = meta.requests.find((r) => r.path.includes("identity"));
    expect(request?.headers["metadata-flavor"]).toBe("Google");
    expect(world.fake.logins("gcp-auth")).toBe(1);
    const cache = join(world.stateDir, expectedCacheName("gcp:gcp-identity:"));
    expect((await stat(cache)).isFile()).toBe(true);
  });

  it("azure: sends the IMDS managed-identity token", async () => {
    await world.cleanup();
    world = await fakeWorld({ jwtKey: JWT_KEY });
    world.fake.addIdentity({ method: "azure-auth", identityId: "azure-identity" });
    world.put("/app", "DB_HOST", "db.internal");
    const client = world.client(
      {},
      {
        auth: { method: "azure", identity_id: "azure-identity" },
        endpoints: { azure_imds: meta.url },
      },
    );
    expect(await client.getSecret({ project: "app", path: "/app", key: "DB_HOST" })).toBe(
      "db.internal",
    );
    expect(
      meta.requests.find((r) => r.path === "/metadata/identity/oauth2/token")?.headers["metadata"],
    ).toBe("true");
    expect(world.fake.logins("azure-auth")).toBe(1);
  });

  it("gcp: a metadata server that is not there is an auth failure naming it", async () => {
    world.fake.addIdentity({ method: "gcp-auth", identityId: "gcp-identity" });
    await meta.stop();
    const client = world.client(
      {},
      {
        auth: { method: "gcp", identity_id: "gcp-identity" },
        endpoints: { gcp_metadata: meta.url },
      },
    );
    const error = await client.token("app").catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "provider.unreachable" });
    expect((error as Error).message).toBe(`cannot reach the GCP metadata server at ${meta.url}`);
    meta = await startFakeCloudMetadata({ jwtKey: JWT_KEY });
  });
});

describe("project resolution", () => {
  it("names an unknown project and the configured ones", async () => {
    const error = await world
      .client()
      .token("nope")
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "provider.unknown_project" });
    expect((error as { hint: string }).hint).toContain("app");
  });

  it("uses the project's own auth over the global one", async () => {
    world.fake.addUniversalAuth({ clientId: "proj-client", clientSecret: "proj-secret" });
    const client = world.client(
      {},
      {
        projects: {
          app: {
            id: PROJECT_ID,
            environment: "prod",
            auth: {
              method: "universal-auth",
              client_id: "proj-client",
              client_secret: "proj-secret",
            },
          },
        },
      },
    );
    await client.token("app");
    const body = world.fake.requests.find((r) => r.path.endsWith("/login"))?.body as Record<
      string,
      string
    >;
    expect(body["clientId"]).toBe("proj-client");
  });
});
