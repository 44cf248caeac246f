// Every Infisical answer is outside input (SPEC §13): whatever JSON (or not-JSON) comes
// back, the client either accepts a well-shaped answer or throws provider.bad_response with
// a clear message — no crash, no hang, and no echo of the body's values.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { isPsiError } from "@psi/core";
import { tempDir } from "@psi/testkit/tmp";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createInfisicalClient,
  GetSecretResponseSchema,
  ListSecretsResponseSchema,
  LoginResponseSchema,
  parseAnswer,
} from "../src/index.js";
import { infisicalConfig } from "./helpers.js";

const MARKER = "VALUE-MARKER-7f3a";

/** Arbitrary JSON with a recognizable string mixed in, sometimes in the right places. */
const json = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: "small" },
    fc.constant(MARKER),
    fc.string(),
    fc.integer(),
    fc.double(),
    fc.boolean(),
    fc.constant(null),
    fc.array(tie("value"), { maxLength: 4 }),
    fc.dictionary(
      fc.oneof(
        fc.constantFrom(
          "secrets",
          "secret",
          "imports",
          "secretKey",
          "secretValue",
          "secretPath",
          "accessToken",
          "expiresIn",
          "environment",
        ),
        fc.string(),
      ),
      tie("value"),
      { maxKeys: 5 },
    ),
  ),
})).value;

const bodies = fc.oneof(
  json.map((value) => JSON.stringify(value)),
  fc.string(),
);

function check(schema: Parameters<typeof parseAnswer>[0], body: string) {
  try {
    parseAnswer(schema, body, "GET /test");
  } catch (error) {
    expect(isPsiError(error, "provider.bad_response")).toBe(true);
    expect((error as Error).message).toMatch(/^Infisical answered GET \/test with /);
    expect((error as Error).message).not.toContain(MARKER);
  }
}

describe("response validation", () => {
  it("accepts or rejects arbitrary bodies for every schema, never echoing values", () => {
    fc.assert(
      fc.property(bodies, (body) => {
        check(ListSecretsResponseSchema, body);
        check(GetSecretResponseSchema, body);
        check(LoginResponseSchema, body);
      }),
      { numRuns: 500 },
    );
  });

  it("accepts well-shaped list answers with extra fields", () => {
    const parsed = parseAnswer(
      ListSecretsResponseSchema,
      JSON.stringify({
        secrets: [{ secretKey: "A", secretValue: "v", secretPath: "/", extra: 1 }],
        imports: [],
        more: true,
      }),
      "GET /test",
    );
    expect(parsed.secrets[0]).toEqual({ secretKey: "A", secretValue: "v", secretPath: "/" });
  });

  it("names the offending field", () => {
    expect(() =>
      parseAnswer(
        ListSecretsResponseSchema,
        JSON.stringify({ secrets: [{ secretKey: "A", secretValue: 5 }] }),
        "GET /x",
      ),
    ).toThrow(
      "Infisical answered GET /x with an unexpected shape (secrets[0].secretValue: expected string)",
    );
  });
});

describe("response validation through the HTTP client", () => {
  let server: Server;
  let body = "{}";
  let url = "";
  let dir: Awaited<ReturnType<typeof tempDir>>;

  beforeAll(async () => {
    dir = await tempDir();
    server = createServer((request, response) => {
      response.writeHead(200, { "content-type": "application/json" });
      response.end(
        request.url?.includes("/login")
          ? JSON.stringify({ accessToken: "tok", expiresIn: 60 })
          : body,
      );
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await dir.cleanup();
  });

  it("turns any 200 body of a list into a result or provider.bad_response", async () => {
    const client = createInfisicalClient({ config: infisicalConfig({ url }), stateDir: dir.path });
    await fc.assert(
      fc.asyncProperty(bodies, async (next) => {
        body = next;
        try {
          const listed = await client.listSecrets({ project: "app", path: "/" });
          expect(Array.isArray(listed)).toBe(true);
        } catch (error) {
          expect(isPsiError(error)).toBe(true);
          expect(["provider.bad_response", "provider.value_hidden"]).toContain(
            (error as { code: string }).code,
          );
          expect((error as Error).message).not.toContain(MARKER);
        }
      }),
      { numRuns: 60 },
    );
  });
});
