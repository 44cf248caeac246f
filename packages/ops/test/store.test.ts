import { join } from "node:path";
import { isPsiError } from "@psi/core";
import { tempDir } from "@psi/testkit/tmp";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { registerSealedSecret } from "../src/index.js";

// Registration through Podman itself is exercised end to end by the CLI's local and
// nitrokeyhsm store tests (real Podman, real shell driver); here: the way out when Podman
// cannot be reached.

let dir: { path: string; cleanup: () => Promise<void> };
beforeEach(async () => {
  dir = await tempDir("psi-ops-store-");
});
afterEach(async () => {
  await dir.cleanup();
});

describe("registerSealedSecret", () => {
  it("without a Podman API says so and points at --mapping-only", async () => {
    const error = await registerSealedSecret({
      name: "app--KEY",
      mapping: Buffer.from('{"provider": "local", "blob": "x"}'),
      podmanSocket: join(dir.path, "no-podman.sock"),
      defaultPodmanSocket: join(dir.path, "default.sock"),
      scope: "user",
      env: {},
      stateDir: dir.path,
    }).catch((e: unknown) => e);
    expect(isPsiError(error, "podman.unreachable")).toBe(true);
    expect((error as { hint?: string }).hint).toContain(
      "podman secret create --driver shell app--KEY -",
    );
  });
});
