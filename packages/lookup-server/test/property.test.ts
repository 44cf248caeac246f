import { readdir } from "node:fs/promises";
import { connect } from "node:net";
import { secretIdProblem } from "@psi/core";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Harness, mappingFor, startServer, tableProvider } from "./helpers.js";

const TABLE_STATUSES = new Set([200, 400, 401, 404, 413, 500, 502]);

/** Sends raw bytes (no client-side validation) and returns the status line's code. */
function rawRequest(socket: string, bytes: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    const client = connect(socket);
    let answer = "";
    client.setEncoding("latin1");
    client.on("data", (chunk: string) => {
      answer += chunk;
    });
    client.on("error", reject);
    client.on("close", () => {
      const match = /^HTTP\/1\.1 (\d{3})/.exec(answer);
      resolve(match ? Number(match[1]) : -1);
    });
    client.write(bytes);
  });
}

describe("arbitrary HTTP requests", () => {
  let harness: Harness;
  beforeAll(async () => {
    const provider = tableProvider("infisical", { DB: "db.internal", FAIL: new Error("boom") });
    harness = await startServer({
      token: "prop-test-token",
      providers: new Map([["infisical", provider]]),
    });
    await harness.writeMapping("known", mappingFor("DB"));
    await harness.writeMapping("failing", mappingFor("FAIL"));
    await harness.writeMapping("corrupt", "{nope");
  });
  afterAll(() => harness.stop());

  it("never crash the server and always get a status from the table", async () => {
    const segment = fc.oneof(
      fc.constantFrom(
        "known",
        "failing",
        "corrupt",
        "missing",
        "..",
        ".",
        "",
        "cache.enc",
        "%2e%2e",
        "%2F",
        "%00",
        "%zz",
      ),
      fc.string({ maxLength: 40 }),
      fc.stringMatching(/^[A-Za-z0-9._%~-]{0,300}$/),
    );
    const path = fc.oneof(
      fc
        .tuple(
          fc.constantFrom(
            "/lookup/",
            "/store/",
            "/delete/",
            "/list",
            "/healthz",
            "/metrics",
            "/",
            "//",
            "/lookup",
            "",
          ),
          segment,
          fc.constantFrom("", "/", "?a=b", "//", "#x"),
        )
        .map(([a, b, c]) => a + b + c),
      fc.webPath(),
      fc.string({ maxLength: 80 }),
    );
    const method = fc.constantFrom(
      "GET",
      "POST",
      "DELETE",
      "PUT",
      "HEAD",
      "OPTIONS",
      "get",
      "X",
      "",
    );
    const auth = fc.constantFrom(
      undefined,
      "Bearer prop-test-token",
      "Bearer nope-nope-nope",
      "bearer prop-test-token",
      "",
    );
    const body = fc.oneof(fc.uint8Array({ maxLength: 2048 }), fc.constant(new Uint8Array(0)));
    await fc.assert(
      fc.asyncProperty(
        method,
        path,
        auth,
        body,
        fc.boolean(),
        async (m, p, a, b, declareLength) => {
          const head =
            `${m} ${p} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n` +
            (a === undefined ? "" : `Authorization: ${a}\r\n`) +
            (declareLength
              ? `Content-Length: ${b.length}\r\n`
              : b.length > 0
                ? "Transfer-Encoding: chunked\r\n"
                : "") +
            "\r\n";
          const payload =
            declareLength || b.length === 0
              ? Buffer.from(b)
              : Buffer.concat([
                  Buffer.from(`${b.length.toString(16)}\r\n`),
                  Buffer.from(b),
                  Buffer.from("\r\n0\r\n\r\n"),
                ]);
          const status = await rawRequest(
            harness.socket,
            Buffer.concat([Buffer.from(head, "latin1"), payload]),
          );
          expect(TABLE_STATUSES.has(status), `${m} ${JSON.stringify(p)} -> ${status}`).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
    const health = await harness.request({ path: "/healthz" });
    expect(health.status).toBe(200);
    // nothing was written outside state_dir or under a name that is not a secret ID
    for (const name of await readdir(harness.stateDir))
      expect(secretIdProblem(name), name).toBeUndefined();
    expect((await readdir(harness.dir)).sort()).toEqual(["run", "state"]);
    expect(harness.log.records().filter((r) => r.level === "error")).toEqual([]);
  });
});
