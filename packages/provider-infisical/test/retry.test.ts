import { PsiError } from "@psi/core";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  isRetryableInfisicalError,
  jitteredSeconds,
  rateLimitWaitMs,
  retryAfterSeconds,
  withInfisicalRetry,
} from "../src/index.js";
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

describe("jitter on the configured delays", () => {
  it("spreads each delay over [0.75, 1.25) of itself by the random source", () => {
    expect(jitteredSeconds(5, () => 0)).toBe(3.75);
    expect(jitteredSeconds(5, () => 0.5)).toBe(5);
    expect(jitteredSeconds(60, () => 0.999)).toBeCloseTo(74.97, 2);
    // Two hosts that failed together come back at different times.
    const hostA = [5, 10, 20, 40, 60].map((delay) => jitteredSeconds(delay, () => 0.1));
    const hostB = [5, 10, 20, 40, 60].map((delay) => jitteredSeconds(delay, () => 0.9));
    expect(hostA.every((delay, index) => delay < hostB[index]!)).toBe(true);
  });

  it("waits the jittered delay and reports it", async () => {
    const draws = [0, 0.999];
    const reported: number[] = [];
    let attempts = 0;
    await withInfisicalRetry(
      async () => {
        attempts += 1;
        if (attempts < 3) throw new PsiError("provider.unreachable", "down");
        return "ok";
      },
      {
        delays: [0.004, 0.004],
        random: () => draws.shift() ?? 0,
        onRetry: ({ delaySeconds }) => reported.push(delaySeconds),
      },
    );
    expect(reported).toEqual([0.003, 0.005]);
  });
});

describe("429 (rate limited)", () => {
  it("reads Retry-After as seconds or an HTTP date", () => {
    const now = Date.parse("2026-01-01T00:00:00Z");
    expect(retryAfterSeconds("7", now)).toBe(7);
    expect(retryAfterSeconds("Thu, 01 Jan 2026 00:00:30 GMT", now)).toBe(30);
    expect(retryAfterSeconds("soon", now)).toBeUndefined();
    expect(retryAfterSeconds(undefined, now)).toBeUndefined();
  });

  it("waits what Retry-After asks plus jitter, and not at all beyond the bound", () => {
    expect(rateLimitWaitMs(3, 30, () => 0)).toBe(3000);
    expect(rateLimitWaitMs(3, 30, () => 0.5)).toBe(3375);
    expect(rateLimitWaitMs(undefined, 30, () => 0)).toBe(1000);
    expect(rateLimitWaitMs(0, 30, () => 1)).toBe(250);
    expect(rateLimitWaitMs(31, 30, () => 0)).toBeUndefined();
  });

  it("retries a rate-limited request after Retry-After and succeeds", async () => {
    const client = world.client({ rateLimit: { random: () => 0 } });
    await client.token("app");
    world.fake.rateLimit(2, 0);
    const listed = await client.listSecrets({ project: "app", path: "/app" });
    expect(listed.map((secret) => secret.key)).toEqual(["A"]);
    expect(world.fake.count("GET", "/api/v4/secrets")).toBe(3);
    expect(
      world.logger.lines.filter((line) => line.fields?.["event"] === "infisical.rate_limited"),
    ).toHaveLength(2);
  });

  it("gives up after the bounded retries, and at once when Retry-After is too long", async () => {
    const client = world.client({ rateLimit: { random: () => 0, retries: 2 } });
    await client.token("app");
    world.fake.rateLimit(Number.POSITIVE_INFINITY, 0);
    await expect(client.listSecrets({ project: "app", path: "/app" })).rejects.toMatchObject({
      code: "provider.rate_limited",
      status: 429,
    });
    expect(world.fake.count("GET", "/api/v4/secrets")).toBe(3);

    world.fake.rateLimit(1, 120);
    const before = world.fake.count("GET", "/api/v4/secrets");
    const error = await client
      .listSecrets({ project: "app", path: "/app" })
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "provider.rate_limited" });
    expect((error as Error).message).toContain("retry after 120 s");
    expect(world.fake.count("GET", "/api/v4/secrets") - before).toBe(1);

    // A lookup holds a container start: it waits 2 s at most.
    world.fake.rateLimit(1, 5);
    await expect(
      client.getSecret({ project: "app", path: "/app", key: "A" }, { purpose: "lookup" }),
    ).rejects.toMatchObject({ code: "provider.rate_limited" });
  });
});
