// Contract tests of the fake Infisical: they pin the request and response shapes taken
// from Infisical's API reference (sources are in the fake's comments), with plain fetch,
// so the provider's own tests run against a fake that is known to speak Infisical.
import { createPrivateKey, X509Certificate } from "node:crypto";
import { type FakeInfisical, startFakeInfisical } from "@psi/testkit/fake-infisical";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { signGetCallerIdentity } from "../src/index.js";

const P = "proj-1";
let fake: FakeInfisical;

async function call(
  method: string,
  path: string,
  options: { token?: string; body?: unknown; query?: Record<string, string> } = {},
) {
  const url = new URL(path, fake.url);
  for (const [key, value] of Object.entries(options.query ?? {})) url.searchParams.set(key, value);
  const response = await fetch(url, {
    method,
    headers: {
      ...(options.token ? { Authorization: `Bearer ${options.token}` } : {}),
      ...(options.body === undefined ? {} : { "Content-Type": "application/json" }),
    },
    ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
  });
  return {
    status: response.status,
    headers: response.headers,
    json: (await response.json()) as Record<string, unknown> & { [key: string]: never },
  };
}

async function login(): Promise<string> {
  const answer = await call("POST", "/api/v1/auth/universal-auth/login", {
    body: { clientId: "cid", clientSecret: "csecret" },
  });
  return answer.json["accessToken"] as unknown as string;
}

beforeEach(async () => {
  fake = await startFakeInfisical();
  fake.addUniversalAuth({ clientId: "cid", clientSecret: "csecret", identityId: "id-1" });
});
afterEach(async () => {
  await fake.stop();
});

describe("fake Infisical: logins", () => {
  it("universal-auth answers {accessToken, expiresIn, accessTokenMaxTTL, tokenType}", async () => {
    const answer = await call("POST", "/api/v1/auth/universal-auth/login", {
      body: { clientId: "cid", clientSecret: "csecret" },
    });
    expect(answer.status).toBe(200);
    expect(Object.keys(answer.json).sort()).toEqual([
      "accessToken",
      "accessTokenMaxTTL",
      "expiresIn",
      "tokenType",
    ]);
    expect(answer.json).toMatchObject({ expiresIn: 7200, tokenType: "Bearer" });
  });

  it("refuses wrong credentials with Infisical's error body", async () => {
    const answer = await call("POST", "/api/v1/auth/universal-auth/login", {
      body: { clientId: "cid", clientSecret: "nope" },
    });
    expect(answer.status).toBe(401);
    expect(Object.keys(answer.json).sort()).toEqual(["error", "message", "reqId", "statusCode"]);
    expect(answer.json["statusCode"]).toBe(401);
  });

  it("aws-auth accepts a correctly signed GetCallerIdentity and refuses a tampered one", async () => {
    fake.addIdentity({ method: "aws-auth", identityId: "aws-id" });
    fake.addAwsKey("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session-token-1");
    const signed = signGetCallerIdentity(
      {
        accessKeyId: "AKIDEXAMPLE",
        secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        sessionToken: "session-token-1",
        source: "env",
      },
      "https://sts.amazonaws.com/",
    );
    const b64 = (text: string) => Buffer.from(text).toString("base64");
    const body = {
      identityId: "aws-id",
      iamHttpRequestMethod: "POST",
      iamRequestBody: b64(signed.body),
      iamRequestHeaders: b64(JSON.stringify(signed.headers)),
    };
    expect((await call("POST", "/api/v1/auth/aws-auth/login", { body })).status).toBe(200);
    const otherBody = {
      ...body,
      iamRequestBody: b64("Action=GetCallerIdentity&Version=2011-06-16"),
    };
    expect((await call("POST", "/api/v1/auth/aws-auth/login", { body: otherBody })).status).toBe(
      401,
    );
    const forged = { ...signed.headers, "X-Amz-Date": "20200101T000000Z" };
    const forgedBody = { ...body, iamRequestHeaders: b64(JSON.stringify(forged)) };
    expect((await call("POST", "/api/v1/auth/aws-auth/login", { body: forgedBody })).status).toBe(
      401,
    );
    const wrongSecret = signGetCallerIdentity(
      {
        accessKeyId: "AKIDEXAMPLE",
        secretAccessKey: "not-the-secret",
        sessionToken: "session-token-1",
        source: "env",
      },
      "https://sts.amazonaws.com/",
    );
    const wrongBody = { ...body, iamRequestHeaders: b64(JSON.stringify(wrongSecret.headers)) };
    expect((await call("POST", "/api/v1/auth/aws-auth/login", { body: wrongBody })).status).toBe(
      401,
    );
  });

  it("gcp-auth and azure-auth take {identityId, jwt} and check the audience", async () => {
    fake.addIdentity({ method: "gcp-auth", identityId: "gcp-id" });
    const jwt = (claims: object) =>
      `${Buffer.from("{}").toString("base64url")}.${Buffer.from(JSON.stringify(claims)).toString("base64url")}.sig`;
    expect(
      (
        await call("POST", "/api/v1/auth/gcp-auth/login", {
          body: { identityId: "gcp-id", jwt: jwt({ aud: "gcp-id" }) },
        })
      ).status,
    ).toBe(200);
    expect(
      (
        await call("POST", "/api/v1/auth/gcp-auth/login", {
          body: { identityId: "gcp-id", jwt: jwt({ aud: "other" }) },
        })
      ).status,
    ).toBe(401);
    expect(
      (
        await call("POST", "/api/v1/auth/gcp-auth/login", {
          body: { identityId: "gcp-id", jwt: "not-a-jwt" },
        })
      ).status,
    ).toBe(401);
  });
});

describe("fake Infisical: secrets", () => {
  it("needs a valid, unexpired bearer token", async () => {
    fake.setSecret({ projectId: P, environment: "prod", path: "/", key: "A", value: "1" });
    const query = { projectId: P, environment: "prod" };
    expect((await call("GET", "/api/v4/secrets", { query })).status).toBe(401);
    expect((await call("GET", "/api/v4/secrets", { query, token: "made-up" })).status).toBe(401);
    const token = await login();
    expect((await call("GET", "/api/v4/secrets", { query, token })).status).toBe(200);
    fake.expireTokens();
    expect((await call("GET", "/api/v4/secrets", { query, token })).status).toBe(401);
  });

  it("lists {secrets:[{secretKey, secretValue, secretPath, ...}]}, recursively over folders", async () => {
    fake.setSecret({ projectId: P, environment: "prod", path: "/app", key: "A", value: "1" });
    fake.setSecret({ projectId: P, environment: "prod", path: "/app/db", key: "B", value: "2" });
    fake.setSecret({ projectId: P, environment: "prod", path: "/other", key: "C", value: "3" });
    const token = await login();
    const flat = await call("GET", "/api/v4/secrets", {
      token,
      query: { projectId: P, environment: "prod", secretPath: "/app" },
    });
    const flatSecrets = flat.json["secrets"] as unknown as Array<Record<string, unknown>>;
    expect(flatSecrets.map((s) => [s["secretKey"], s["secretValue"], s["secretPath"]])).toEqual([
      ["A", "1", "/app"],
    ]);
    expect(flatSecrets[0]).toMatchObject({ type: "shared", secretValueHidden: false, version: 1 });
    expect(flat.json["imports"]).toBeUndefined();
    const deep = await call("GET", "/api/v4/secrets", {
      token,
      query: { projectId: P, environment: "prod", secretPath: "/app/", recursive: "true" },
    });
    const deepSecrets = deep.json["secrets"] as unknown as Array<Record<string, unknown>>;
    expect(deepSecrets.map((s) => [s["secretKey"], s["secretPath"]])).toEqual([
      ["A", "/app"],
      ["B", "/app/db"],
    ]);
    expect(
      (
        await call("GET", "/api/v4/secrets", {
          token,
          query: { projectId: P, environment: "prod", secretPath: "/nope" },
        })
      ).status,
    ).toBe(404);
  });

  it("returns imports only for include_imports=true, as [{secretPath, environment, folderId, secrets}]", async () => {
    fake.setSecret({ projectId: P, environment: "prod", path: "/app", key: "A", value: "local" });
    fake.setSecret({
      projectId: P,
      environment: "prod",
      path: "/shared",
      key: "S",
      value: "shared",
    });
    fake.addImport({
      projectId: P,
      environment: "prod",
      path: "/app",
      from: { environment: "prod", path: "/shared" },
    });
    const token = await login();
    const query = { projectId: P, environment: "prod", secretPath: "/app" };
    expect(
      (await call("GET", "/api/v4/secrets", { token, query: { ...query, includeImports: "true" } }))
        .json["imports"],
    ).toBeUndefined();
    const answer = await call("GET", "/api/v4/secrets", {
      token,
      query: { ...query, include_imports: "true" },
    });
    const imports = answer.json["imports"] as unknown as Array<Record<string, unknown>>;
    expect(imports).toHaveLength(1);
    expect(Object.keys(imports[0]!).sort()).toEqual([
      "environment",
      "folderId",
      "secretPath",
      "secrets",
    ]);
    expect(imports[0]).toMatchObject({ secretPath: "/shared", environment: "prod" });
    expect((imports[0]!["secrets"] as Array<Record<string, unknown>>)[0]).toMatchObject({
      secretKey: "S",
      secretValue: "shared",
    });
  });

  it("gets {secret:{...}} by name, 404 for unknown keys, imports with include_imports", async () => {
    fake.setSecret({ projectId: P, environment: "prod", path: "/app", key: "A", value: "1" });
    fake.setSecret({ projectId: P, environment: "dev", path: "/", key: "D", value: "dev" });
    fake.addImport({
      projectId: P,
      environment: "prod",
      path: "/app",
      from: { environment: "dev", path: "/" },
    });
    const token = await login();
    const query = { projectId: P, environment: "prod", secretPath: "/app" };
    const found = await call("GET", "/api/v4/secrets/A", { token, query });
    expect(found.json["secret"]).toMatchObject({
      secretKey: "A",
      secretValue: "1",
      secretPath: "/app",
    });
    expect((await call("GET", "/api/v4/secrets/NOPE", { token, query })).status).toBe(404);
    expect((await call("GET", "/api/v4/secrets/D", { token, query })).status).toBe(404);
    const imported = await call("GET", "/api/v4/secrets/D", {
      token,
      query: { ...query, include_imports: "true" },
    });
    expect(imported.json["secret"]).toMatchObject({
      secretKey: "D",
      secretValue: "dev",
      environment: "dev",
    });
  });

  it("creates, refuses duplicates, patches, and batch-creates", async () => {
    fake.addFolder({ projectId: P, environment: "prod", path: "/app" });
    const token = await login();
    const at = { projectId: P, environment: "prod", secretPath: "/app" };
    const created = await call("POST", "/api/v4/secrets/NEW", {
      token,
      body: { ...at, secretValue: "  v1 " },
    });
    expect(created.status).toBe(200);
    expect(created.json["secret"]).toMatchObject({ secretKey: "NEW", secretValue: "v1" });
    expect(
      (await call("POST", "/api/v4/secrets/NEW", { token, body: { ...at, secretValue: "x" } }))
        .status,
    ).toBe(400);
    const patched = await call("PATCH", "/api/v4/secrets/NEW", {
      token,
      body: { ...at, secretValue: "v2" },
    });
    expect(patched.json["secret"]).toMatchObject({ secretValue: "v2", version: 2 });
    expect(
      (await call("PATCH", "/api/v4/secrets/GONE", { token, body: { ...at, secretValue: "v2" } }))
        .status,
    ).toBe(404);
    const batch = await call("POST", "/api/v4/secrets/batch", {
      token,
      body: {
        ...at,
        secrets: [
          { secretKey: "B1", secretValue: "b1" },
          { secretKey: "B2", secretValue: "b2" },
        ],
      },
    });
    expect((batch.json["secrets"] as unknown as unknown[]).length).toBe(2);
    expect(fake.getSecret({ projectId: P, environment: "prod", path: "/app", key: "B2" })).toBe(
      "b2",
    );
    const clash = await call("POST", "/api/v4/secrets/batch", {
      token,
      body: { ...at, secrets: [{ secretKey: "B1", secretValue: "x" }] },
    });
    expect(clash.status).toBe(400);
  });

  it("creates folders with {name, path, workspaceId, environment}; an existing one answers 200 with it", async () => {
    const token = await login();
    const body = { workspaceId: P, environment: "prod", name: "db", path: "/app" };
    const created = await call("POST", "/api/v1/folders", { token, body });
    expect(created.status).toBe(200);
    const folder = created.json["folder"] as unknown as Record<string, unknown>;
    expect(folder).toMatchObject({ name: "db", path: "/app/db" });
    const again = await call("POST", "/api/v1/folders", { token, body });
    expect(again.status).toBe(200);
    expect(again.json["folder"]).toMatchObject({ id: folder["id"], name: "db" });
    const bad = await call("POST", "/api/v1/folders", { token, body: { ...body, name: "a b" } });
    expect(bad.status).toBe(400);
    expect(String(bad.json["message"])).toContain("Folder name");
    expect(fake.folders(P, "prod")).toEqual(["/", "/app", "/app/db"]);
    const listed = await call("GET", "/api/v1/folders", {
      token,
      query: { workspaceId: P, environment: "prod", path: "/app" },
    });
    expect(listed.json["folders"]).toEqual([expect.objectContaining({ name: "db" })]);
    const missing = await call("GET", "/api/v1/folders", {
      token,
      query: { workspaceId: P, environment: "prod", path: "/nope" },
    });
    expect(missing.status).toBe(404);
  });
});

describe("fake Infisical: imports as Infisical resolves them", () => {
  const list = (token: string, query: Record<string, string>) =>
    call("GET", "/api/v4/secrets", {
      token,
      query: { projectId: P, environment: "prod", include_imports: "true", ...query },
    });
  type Imported = {
    secretPath: string;
    environment: string;
    secrets: Array<{ secretKey: string }>;
  };

  it("a recursive listing returns the imports of every folder of the tree", async () => {
    fake.setSecret({ projectId: P, environment: "prod", path: "/app", key: "A", value: "a" });
    fake.setSecret({ projectId: P, environment: "staging", path: "/s", key: "S", value: "s" });
    fake.setSecret({ projectId: P, environment: "prod", path: "/shared", key: "R", value: "r" });
    fake.addFolder({ projectId: P, environment: "prod", path: "/app/sub" });
    fake.addImport({
      projectId: P,
      environment: "prod",
      path: "/app/sub",
      from: { environment: "staging", path: "/s" },
    });
    fake.addImport({
      projectId: P,
      environment: "prod",
      path: "/app",
      from: { environment: "prod", path: "/shared" },
    });
    const token = await login();
    const flat = await list(token, { secretPath: "/app", recursive: "false" });
    expect((flat.json["imports"] as unknown as Imported[]).map((i) => i.secretPath)).toEqual([
      "/shared",
    ]);
    const deep = await list(token, { secretPath: "/app", recursive: "true" });
    const imports = deep.json["imports"] as unknown as Imported[];
    expect(imports.map((i) => [i.environment, i.secretPath])).toEqual([
      ["prod", "/shared"],
      ["staging", "/s"],
    ]);
    // Nothing in an entry says which folder imports it (the v4 response schema has no such field).
    expect(Object.keys(imports[1]!).sort()).toEqual([
      "environment",
      "folderId",
      "secretPath",
      "secrets",
    ]);
    const attached = await call("GET", "/api/v2/secret-imports", {
      token,
      query: { projectId: P, environment: "prod", path: "/app/sub" },
    });
    expect(attached.json["secretImports"]).toEqual([
      expect.objectContaining({
        importPath: "/s",
        importEnv: expect.objectContaining({ slug: "staging" }),
      }),
    ]);
  });

  it("follows imports of imports up to 10 levels, cross-project ones too, and stops at cycles", async () => {
    // /l0 imports /l1 imports ... /l12; each /lN holds K<N>.
    for (let level = 0; level <= 12; level++) {
      fake.setSecret({
        projectId: P,
        environment: "prod",
        path: `/l${level}`,
        key: `K${level}`,
        value: `${level}`,
      });
      if (level < 12)
        fake.addImport({
          projectId: P,
          environment: "prod",
          path: `/l${level}`,
          from: { environment: "prod", path: `/l${level + 1}` },
        });
    }
    fake.addImport({
      projectId: P,
      environment: "prod",
      path: "/l12",
      from: { environment: "prod", path: "/l0" },
    });
    fake.setSecret({
      projectId: "other",
      environment: "prod",
      path: "/x",
      key: "OTHER",
      value: "o",
    });
    fake.addFolder({ projectId: P, environment: "prod", path: "/app" });
    fake.addImport({
      projectId: P,
      environment: "prod",
      path: "/app",
      from: { environment: "prod", path: "/l0" },
    });
    fake.addImport({
      projectId: P,
      environment: "prod",
      path: "/app",
      from: { projectId: "other", environment: "prod", path: "/x" },
    });
    const token = await login();
    const answer = await list(token, { secretPath: "/app" });
    const imports = answer.json["imports"] as unknown as Imported[];
    expect(imports.map((i) => i.secretPath)).toEqual(["/l0", "/x"]);
    const keys = imports[0]!.secrets.map((secret) => secret.secretKey);
    // /l0 itself plus ten levels of imports below it: /l11 and deeper are cut off.
    expect(keys).toEqual(Array.from({ length: 11 }, (_, level) => `K${level}`));
    expect(imports[1]!.secrets.map((secret) => secret.secretKey)).toEqual(["OTHER"]);
    const get = await call("GET", "/api/v4/secrets/K7", {
      token,
      query: { projectId: P, environment: "prod", secretPath: "/app", include_imports: "true" },
    });
    expect(get.json["secret"]).toMatchObject({ secretValue: "7", secretPath: "/l7" });
  });
});

// Infisical's reference syntax, built so that no literal looks like a mistyped template.
const ref = (name: string) => ["$", "{", name, "}"].join("");

describe("fake Infisical: secret references", () => {
  it("expands references (KEY and env.path.KEY); one it may not read is 403, never a silent value", async () => {
    const at = { projectId: P, environment: "prod" };
    fake.setSecret({ ...at, path: "/app", key: "HOST", value: "db" });
    fake.setSecret({
      ...at,
      path: "/app",
      key: "URL",
      value: `pg://${ref("HOST")}/${ref("staging.cfg.NAME")}`,
    });
    fake.setSecret({
      projectId: P,
      environment: "staging",
      path: "/cfg",
      key: "NAME",
      value: `n-${ref("X")}`,
    });
    fake.setSecret({ projectId: P, environment: "staging", path: "/cfg", key: "X", value: "1" });
    fake.setSecret({ ...at, path: "/app", key: "LOOSE", value: ref("MISSING") });
    const token = await login();
    const query = { projectId: P, environment: "prod", secretPath: "/app" };
    const expanded = await call("GET", "/api/v4/secrets/URL", {
      token,
      query: { ...query, expandSecretReferences: "true" },
    });
    expect(expanded.json["secret"]).toMatchObject({ secretValue: "pg://db/n-1" });
    const raw = await call("GET", "/api/v4/secrets/URL", { token, query });
    expect(raw.json["secret"]).toMatchObject({
      secretValue: `pg://${ref("HOST")}/${ref("staging.cfg.NAME")}`,
    });
    const loose = await call("GET", "/api/v4/secrets/LOOSE", {
      token,
      query: { ...query, expandSecretReferences: "true" },
    });
    expect(loose.json["secret"]).toMatchObject({ secretValue: ref("MISSING") });

    fake.denyRead({ projectId: P, environment: "staging", path: "/cfg" });
    const denied = await call("GET", "/api/v4/secrets/URL", {
      token,
      query: { ...query, expandSecretReferences: "true" },
    });
    expect(denied.status).toBe(403);
    expect(String(denied.json["message"])).toMatch(
      /permission to read secret 'NAME' in environment 'staging' at path '\/cfg', which is referenced by secret 'URL'/,
    );
    const listed = await call("GET", "/api/v4/secrets", {
      token,
      query: { ...query, expandSecretReferences: "true" },
    });
    expect(listed.status).toBe(403);
    expect(listed.json).toMatchObject({
      message: "Failed to expand one or more secret references",
      details: [expect.stringContaining("referenced by secret 'URL'")],
    });
  });
});

describe("fake Infisical: answers of some deployments", () => {
  it("rate limits with 429 and Retry-After on demand", async () => {
    fake.rateLimit(1, 7);
    const limited = await call("POST", "/api/v1/auth/universal-auth/login", {
      body: { clientId: "cid", clientSecret: "csecret" },
    });
    expect(limited.status).toBe(429);
    expect(limited.headers.get("retry-after")).toBe("7");
    expect(limited.json).toMatchObject({ statusCode: 429, error: "Too Many Requests" });
    const next = await call("POST", "/api/v1/auth/universal-auth/login", {
      body: { clientId: "cid", clientSecret: "csecret" },
    });
    expect(next.status).toBe(200);
  });

  it("answers a missing folder with an empty 200 when switched to, 404 otherwise", async () => {
    const token = await login();
    const query = {
      projectId: P,
      environment: "prod",
      secretPath: "/typo",
      include_imports: "true",
    };
    expect((await call("GET", "/api/v4/secrets", { token, query })).status).toBe(404);
    fake.emptyForMissingFolder(true);
    const empty = await call("GET", "/api/v4/secrets", { token, query });
    expect(empty.status).toBe(200);
    expect(empty.json).toEqual({ secrets: [], imports: [] });
  });
});

describe("fake Infisical: certificates", () => {
  it("issues {certificate:{certificate, privateKey, certificateChain, ...}} and renews flat", async () => {
    fake.addCertificateProfile({ profileId: "profile-1", projectId: P });
    const token = await login();
    const issued = await call("POST", "/api/v1/cert-manager/certificates", {
      token,
      body: {
        profileId: "profile-1",
        attributes: {
          commonName: "svc.example",
          altNames: [{ type: "dns_name", value: "svc.example" }],
          ttl: "30d",
        },
      },
    });
    expect(issued.status).toBe(200);
    const cert = issued.json["certificate"] as unknown as Record<string, string>;
    expect(Object.keys(cert).sort()).toEqual([
      "certificate",
      "certificateChain",
      "certificateId",
      "issuingCaCertificate",
      "privateKey",
      "serialNumber",
    ]);
    const x509 = new X509Certificate(cert["certificate"]!);
    expect(x509.subject).toContain("CN=svc.example");
    expect(x509.subjectAltName).toContain("DNS:svc.example");
    expect(x509.checkIssued(new X509Certificate(cert["issuingCaCertificate"]!))).toBe(true);
    const renewed = await call(
      "POST",
      `/api/v1/cert-manager/certificates/${cert["certificateId"]}/renew`,
      { token, body: {} },
    );
    expect(renewed.status).toBe(200);
    expect(renewed.json["certificateId"]).not.toBe(cert["certificateId"]);
    expect(typeof renewed.json["certificate"]).toBe("string");
    expect(fake.certificates[1]?.renewedFrom).toBe(cert["certificateId"]);
    expect(
      (await call("POST", "/api/v1/cert-manager/certificates/unknown/renew", { token, body: {} }))
        .status,
    ).toBe(404);
  });

  it("answers pending_approval without a certificate, then issues on approval", async () => {
    fake.addCertificateProfile({ profileId: "profile-1", projectId: P });
    fake.requireCertificateApproval(true);
    const token = await login();
    const body = { profileId: "profile-1", attributes: { commonName: "svc.example" } };
    const pending = await call("POST", "/api/v1/cert-manager/certificates", { token, body });
    expect(pending.status).toBe(200);
    expect(pending.json["certificate"]).toBeUndefined();
    expect(pending.json).toMatchObject({ status: "pending_approval" });
    const id = pending.json["certificateRequestId"] as unknown as string;
    const requestPath = `/api/v1/cert-manager/certificates/certificate-requests/${id}`;
    expect((await call("GET", requestPath, { token })).json).toMatchObject({
      status: "pending_approval",
      certificate: null,
      privateKey: null,
    });
    await fake.approveCertificates();
    const issued = (await call("GET", requestPath, { token })).json;
    expect(issued).toMatchObject({ status: "issued" });
    expect(new X509Certificate(issued["certificate"] as unknown as string).subject).toContain(
      "CN=svc.example",
    );
  });

  it("renews without privateKey when switched to: the renewed certificate keeps the key", async () => {
    fake.addCertificateProfile({ profileId: "profile-1", projectId: P });
    const token = await login();
    const issued = await call("POST", "/api/v1/cert-manager/certificates", {
      token,
      body: { profileId: "profile-1", attributes: { commonName: "svc.example" } },
    });
    const cert = issued.json["certificate"] as unknown as Record<string, string>;
    fake.renewWithoutPrivateKey(true);
    const renewed = await call(
      "POST",
      `/api/v1/cert-manager/certificates/${cert["certificateId"]}/renew`,
      { token, body: {} },
    );
    expect(renewed.status).toBe(200);
    expect(renewed.json["privateKey"]).toBeUndefined();
    const x509 = new X509Certificate(renewed.json["certificate"] as unknown as string);
    expect(x509.checkPrivateKey(createPrivateKey(cert["privateKey"]!))).toBe(true);
  });
});

describe("fake Infisical: switches", () => {
  it("goes down and up, answers 5xx on demand, and logs requests", async () => {
    await fake.down();
    await expect(fetch(`${fake.url}/api/v4/secrets`)).rejects.toThrow();
    await fake.up();
    fake.fail5xx(503, 1);
    expect(
      (
        await call("POST", "/api/v1/auth/universal-auth/login", {
          body: { clientId: "cid", clientSecret: "csecret" },
        })
      ).status,
    ).toBe(503);
    expect(
      (
        await call("POST", "/api/v1/auth/universal-auth/login", {
          body: { clientId: "cid", clientSecret: "csecret" },
        })
      ).status,
    ).toBe(200);
    expect(fake.count("POST", "/api/v1/auth/")).toBe(2);
    expect(fake.logins("universal-auth")).toBe(1);
  });
});
