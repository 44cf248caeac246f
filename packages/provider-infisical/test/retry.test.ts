import { PsiError } from "@psi/core";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { isRetryableInfisicalError, withInfisicalRetry } from "../src/index.js";
import { type FakeWorld, fakeWorld } from "./helpers.js";

let world: FakeWorld;
beforeEach(async () => {
  world = await fakeWorld();
  world.put("/app", "A", "a");
});
afterEach(async () => {
  await world.cleanup();
});

const tiny = [0.005, 0.005, 0.005];

describe("withInfisicalRetry against the fake", () => {
  it("retries 502/503 and succeeds once Infisical recovers", async () => {
    const client = world.client();
    await client.token("app");
    world.fake.fail5xx(503, 2);
    const retries: number[] = [];
    const listed = await withInfisicalRetry(
      () => client.listSecrets({ project: "app", path: "/app" }),
      {
        delays: tiny,
        onRetry: ({ attempt }) => retries.push(attempt),
      },
    );
    expect(listed.map((s) => s.key)).toEqual(["A"]);
    expect(retries).toEqual([1, 2]);
    expect(world.fake.count("GET", "/api/v4/secrets")).toBe(3);
  });

  it("retries 404 (Infisical's propagation delay) and connection failures", async () => {
    const client = world.client();
    await client.token("app");
    world.fake.fail5xx(404, 1);
    expect(
      (
        await withInfisicalRetry(() => client.listSecrets({ project: "app", path: "/app" }), {
          delays: tiny,
        })
      ).length,
    ).toBe(1);
    await world.fake.down();
    let attempts = 0;
    const listed = await withInfisicalRetry(
      async () => {
        attempts += 1;
        if (attempts === 2) await world.fake.up();
        return client.listSecrets({ project: "app", path: "/app" });
      },
      { delays: tiny },
    );
    expect(listed.length).toBe(1);
    expect(attempts).toBe(2);
  });

  it("gives up after the last delay with the last error", async () => {
    const client = world.client();
    await client.token("app");
    world.fake.fail5xx(502);
    const error = await withInfisicalRetry(
      () => client.listSecrets({ project: "app", path: "/app" }),
      { delays: tiny },
    ).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "provider.http_error", status: 502 });
    expect(world.fake.count("GET", "/api/v4/secrets")).toBe(4);
  });

  it("fails fast on 500 and on auth failures", async () => {
    const client = world.client();
    await client.token("app");
    world.fake.fail5xx(500);
    await expect(
      withInfisicalRetry(() => client.listSecrets({ project: "app", path: "/app" }), {
        delays: tiny,
      }),
    ).rejects.toMatchObject({
      status: 500,
    });
    expect(world.fake.count("GET", "/api/v4/secrets")).toBe(1);
    world.fake.fail5xx(null);
    const wrong = world.client(
      {},
      { auth: { method: "universal-auth", client_id: "ua-client-id", client_secret: "bad" } },
    );
    wrong.reset();
    await expect(
      withInfisicalRetry(() => wrong.login("app"), { delays: tiny }),
    ).rejects.toMatchObject({ code: "provider.auth_failed" });
    expect(world.fake.count("POST", "/api/v1/auth/universal-auth/login")).toBe(2);
  });
});

describe("isRetryableInfisicalError", () => {
  it("classifies by code and status", () => {
    const withStatus = (code: string, status?: number) =>
      status === undefined
        ? new PsiError(code, "m")
        : Object.assign(new PsiError(code, "m"), { status });
    expect(isRetryableInfisicalError(withStatus("provider.unreachable"))).toBe(true);
    expect(isRetryableInfisicalError(withStatus("provider.timeout"))).toBe(true);
    expect(isRetryableInfisicalError(withStatus("provider.http_error", 503))).toBe(true);
    expect(isRetryableInfisicalError(withStatus("provider.not_found", 404))).toBe(true);
    expect(isRetryableInfisicalError(withStatus("provider.http_error", 500))).toBe(false);
    expect(isRetryableInfisicalError(withStatus("provider.auth_failed", 404))).toBe(false);
    expect(isRetryableInfisicalError(new Error("plain"))).toBe(false);
  });

  it("stops waiting when the signal aborts", async () => {
    const controller = new AbortController();
    const failing = () =>
      Promise.reject(Object.assign(new PsiError("provider.unreachable", "down")));
    const pending = withInfisicalRetry(failing, { delays: [60], signal: controller.signal });
    controller.abort();
    await expect(pending).rejects.toThrow();
  });
});
