import { X509Certificate } from "node:crypto";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type FakeWorld, fakeWorld, PROJECT_ID } from "./helpers.js";

let world: FakeWorld;
beforeEach(async () => {
  world = await fakeWorld();
  world.fake.addFolder({ projectId: PROJECT_ID, environment: "prod", path: "/app" });
});
afterEach(async () => {
  await world.cleanup();
});

const at = (path: string, key: string) => ({
  projectId: PROJECT_ID,
  environment: "prod",
  path,
  key,
});

describe("secret writes", () => {
  it("creates one secret; a second create of the same key is Infisical's 400", async () => {
    const client = world.client();
    expect(
      await client.createSecret({
        project: "app",
        path: "/app",
        key: "NEW",
        value: "v1",
        comment: "imported",
      }),
    ).toBe("created");
    expect(world.fake.getSecret(at("/app", "NEW"))).toBe("v1");
    const error = await client
      .createSecret({ project: "app", path: "/app", key: "NEW", value: "v2" })
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "provider.http_error", status: 400 });
    expect((error as Error).message).not.toContain("v2");
  });

  it("updates an existing secret; a missing one is not found at its path", async () => {
    world.put("/app", "OLD", "before");
    const client = world.client();
    expect(
      await client.updateSecret({ project: "app", path: "/app", key: "OLD", value: "after" }),
    ).toBe("updated");
    expect(world.fake.getSecret(at("/app", "OLD"))).toBe("after");
    const error = await client
      .updateSecret({ project: "app", path: "/app", key: "GONE", value: "x" })
      .catch((e: unknown) => e);
    expect(error).toMatchObject({
      code: "provider.not_found",
      message: "secret GONE not found at path /app in project app",
    });
  });

  it("batch-creates secrets in one request", async () => {
    const client = world.client();
    const outcome = await client.createSecrets({
      project: "app",
      path: "/app",
      secrets: [
        { key: "B1", value: "one" },
        { key: "B2", value: "two", comment: "c" },
      ],
    });
    expect(outcome).toBe("created");
    expect(world.fake.count("POST", "/api/v4/secrets/batch")).toBe(1);
    expect([
      world.fake.getSecret(at("/app", "B1")),
      world.fake.getSecret(at("/app", "B2")),
    ]).toEqual(["one", "two"]);
    const body = world.fake.requests.find((r) => r.path === "/api/v4/secrets/batch")?.body;
    expect(body).toMatchObject({ projectId: PROJECT_ID, environment: "prod", secretPath: "/app" });
  });
});

describe("folders", () => {
  it("creates a folder and reports an existing one (Infisical answers 200) as not created", async () => {
    const client = world.client();
    expect(await client.createFolder({ project: "app", path: "/app", name: "db" })).toEqual({
      created: true,
    });
    expect(await client.createFolder({ project: "app", path: "/app", name: "db" })).toEqual({
      created: false,
    });
    const posts = world.fake.requests.filter(
      (r) => r.method === "POST" && r.path === "/api/v1/folders",
    );
    expect(posts.map((r) => r.body)).toEqual([
      {
        name: "db",
        path: "/app",
        projectId: PROJECT_ID,
        workspaceId: PROJECT_ID,
        environment: "prod",
      },
    ]);
  });

  it("shows a 400 as the validation error it is, with Infisical's message", async () => {
    const error = await world
      .client()
      .createFolder({ project: "app", path: "/", name: "bad name" })
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "provider.http_error", status: 400 });
    expect((error as Error).message).toContain('Infisical refused folder "bad name" under /');
    expect((error as Error).message).toContain("Folder name can only contain");
    expect(world.fake.folders(PROJECT_ID, "prod")).not.toContain("/bad name");
  });

  it("ensureFolderPath creates the missing levels only", async () => {
    world.fake.addFolder({ projectId: PROJECT_ID, environment: "prod", path: "/app" });
    const created = await world.client().ensureFolderPath({ project: "app", path: "/app/api/v2" });
    expect(created).toEqual(["/app/api", "/app/api/v2"]);
    // Levels below a folder just created are not listed first: they cannot exist yet.
    expect(world.fake.count("GET", "/api/v1/folders")).toBe(2);
    expect(world.fake.folders(PROJECT_ID, "prod")).toEqual([
      "/",
      "/app",
      "/app/api",
      "/app/api/v2",
    ]);
  });
});

describe("certificates", () => {
  it("issues from a profile and renews by id", async () => {
    world.fake.addCertificateProfile({ profileId: "prof-1", projectId: PROJECT_ID });
    const client = world.client();
    const issued = await client.issueCertificate({
      project: "app",
      profileId: "prof-1",
      commonName: "api.example.internal",
      altNames: [
        { type: "dns_name", value: "api.example.internal" },
        { type: "ip_address", value: "10.1.2.3" },
      ],
      ttl: "30d",
    });
    const x509 = new X509Certificate(issued.certificate);
    expect(x509.subject).toContain("CN=api.example.internal");
    expect(x509.subjectAltName).toContain("IP Address:10.1.2.3");
    expect(issued.privateKey).toMatch(/BEGIN PRIVATE KEY/);
    expect(world.fake.requests.at(-1)?.body).toEqual({
      profileId: "prof-1",
      attributes: {
        commonName: "api.example.internal",
        altNames: [
          { type: "dns_name", value: "api.example.internal" },
          { type: "ip_address", value: "10.1.2.3" },
        ],
        ttl: "30d",
      },
    });
    const renewed = await client.renewCertificate({
      project: "app",
      certificateId: issued.certificateId,
    });
    expect(renewed.certificateId).not.toBe(issued.certificateId);
    expect(new X509Certificate(renewed.certificate).subject).toContain("CN=api.example.internal");
    const missing = await client
      .renewCertificate({ project: "app", certificateId: "nope" })
      .catch((e: unknown) => e);
    expect(missing).toMatchObject({
      code: "provider.not_found",
      message: "certificate nope not found in project app",
    });
  });

  it("reports a request waiting for approval", async () => {
    const client = world.client({
      fetch: async (input, init) =>
        String(input).endsWith("/api/v1/cert-manager/certificates")
          ? Response.json({
              certificateRequestId: "r1",
              status: "pending_approval",
              message: "waiting",
            })
          : fetch(input, init),
    });
    const error = await client
      .issueCertificate({ project: "app", profileId: "p", commonName: "x" })
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "provider.pending_approval" });
  });
});
