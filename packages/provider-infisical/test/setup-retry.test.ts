import { isPsiError, PsiError } from "@psi/core";
import { captureLogger } from "@psi/testkit/unix-http";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { setupRetry } from "../src/index.js";
import { type FakeWorld, fakeWorld } from "./helpers.js";

// setup's retry policy over real listings against the fake Infisical.

let world: FakeWorld;
beforeEach(async () => {
  world = await fakeWorld();
  world.put("/app", "A", "a");
});
afterEach(async () => {
  await world.cleanup();
});

describe("setupRetry", () => {
  it("retries infisical listings with a warning per retry", async () => {
    const client = world.client();
    await client.token("app");
    world.fake.fail5xx(503, 1);
    const { logger, text } = captureLogger("warn");
    const retry = setupRetry([0.005, 0.005], logger);
    const listed = await retry(() => client.listSecrets({ project: "app", path: "/app" }), {
      provider: "infisical",
      signal: undefined,
    });
    expect(listed.map((s) => s.key)).toEqual(["A"]);
    expect(text()).toContain("attempt 2 of 3");
  });

  it("runs other providers' operations and every operation without delays once", async () => {
    const { logger } = captureLogger("warn");
    for (const [delays, provider] of [
      [[0.005], "nitrokeyhsm"],
      [undefined, "infisical"],
      [[], "infisical"],
    ] as const) {
      let calls = 0;
      const error = await setupRetry(delays, logger)(
        async () => {
          calls++;
          // Retryable for Infisical: only the policy decides that it runs once.
          throw new PsiError("provider.unreachable", "down");
        },
        { provider, signal: undefined },
      ).catch((e: unknown) => e);
      expect(isPsiError(error, "provider.unreachable")).toBe(true);
      expect(calls).toBe(1);
    }
  });
});
