// verify_ssl and ca_cert against a real TLS listener: an HTTPS front for the fake with a
// certificate from a private CA made by openssl.
import { readFile } from "node:fs/promises";
import { request } from "node:http";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { createTestCa, issueTestCertificate } from "@psi/testkit/tls";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type FakeWorld, fakeWorld } from "./helpers.js";

let world: FakeWorld;
let front: Server;
let httpsUrl: string;
let caFile: string;

beforeEach(async () => {
  world = await fakeWorld();
  world.put("/app", "A", "over-tls");
  const dir = world.stateDir;
  const ca = await createTestCa(dir);
  caFile = ca.cert;
  await issueTestCertificate({
    ca,
    cert: join(dir, "srv.pem"),
    key: join(dir, "srv.key"),
    subject: "/CN=127.0.0.1",
    subjectAltName: "IP:127.0.0.1",
  });
  const target = new URL(world.fake.url);
  front = createServer(
    { key: await readFile(join(dir, "srv.key")), cert: await readFile(join(dir, "srv.pem")) },
    (incoming, outgoing) => {
      const forward = request(
        {
          host: target.hostname,
          port: target.port,
          path: incoming.url,
          method: incoming.method,
          headers: incoming.headers,
        },
        (answer) => {
          outgoing.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(outgoing);
        },
      );
      incoming.pipe(forward);
    },
  );
  await new Promise<void>((resolve) => front.listen(0, "127.0.0.1", resolve));
  httpsUrl = `https://127.0.0.1:${(front.address() as AddressInfo).port}`;
});
afterEach(async () => {
  front.closeAllConnections();
  await new Promise<void>((resolve) => front.close(() => resolve()));
  await world.cleanup();
});

describe("TLS settings", () => {
  it("refuses a certificate from an unknown CA by default, naming the TLS failure", async () => {
    const client = world.client({}, { api_url: httpsUrl });
    const error = await client
      .getSecret({ project: "app", path: "/app", key: "A" })
      .catch((e: unknown) => e);
    expect(error).toMatchObject({
      code: "provider.unreachable",
      message: `cannot reach Infisical at ${httpsUrl}`,
    });
    expect((error as { hint: string }).hint).toMatch(/certificate/i);
  });

  it("trusts the CA of providers.infisical.ca_cert", async () => {
    const client = world.client({}, { api_url: httpsUrl, ca_cert: caFile });
    expect(await client.getSecret({ project: "app", path: "/app", key: "A" })).toBe("over-tls");
  });

  it("trusts SSL_CERT_FILE when no ca_cert is configured, as the Python psi (httpx) did", async () => {
    const client = world.client({ env: { SSL_CERT_FILE: caFile } }, { api_url: httpsUrl });
    expect(await client.getSecret({ project: "app", path: "/app", key: "A" })).toBe("over-tls");
  });

  it("trusts the top-level ca_cert handed in as caCert", async () => {
    const client = world.client({ caCert: caFile }, { api_url: httpsUrl });
    expect(await client.getSecret({ project: "app", path: "/app", key: "A" })).toBe("over-tls");
  });

  it("skips verification with verify_ssl: false", async () => {
    const client = world.client({}, { api_url: httpsUrl, verify_ssl: false });
    expect(await client.getSecret({ project: "app", path: "/app", key: "A" })).toBe("over-tls");
  });

  it("says when ca_cert cannot be read", async () => {
    const client = world.client(
      {},
      { api_url: httpsUrl, ca_cert: join(world.stateDir, "missing.pem") },
    );
    await expect(client.token("app")).rejects.toMatchObject({ code: "provider.not_configured" });
  });
});
