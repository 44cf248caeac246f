import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { isPsiError } from "@psi/core";
import { podmanAvailable, podmanSandbox, stateDirDriverConf } from "@psi/testkit/podman";
import { requireTool, tempDir } from "@psi/testkit/tmp";
import { captureLogger } from "@psi/testkit/unix-http";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { registerSealedSecret } from "../src/index.js";

// Registration through a real Podman whose shell driver keeps mappings in one directory;
// the CLI's local and nitrokeyhsm store tests run it end to end with psi serve.

const skip = requireTool(podmanAvailable(), "podman", "podman");

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

describe.skipIf(skip)("registerSealedSecret through Podman", () => {
  it("reports the mapping file the driver wrote, and warns when it is elsewhere", async () => {
    const driverDir = join(dir.path, "driver-state");
    await mkdir(driverDir, { recursive: true });
    const podman = await podmanSandbox(join(dir.path, "podman"), stateDirDriverConf(driverDir));
    await podman.startService();
    try {
      const mapping = Buffer.from('{"provider": "local", "blob": "x"}');
      const options = {
        mapping,
        podmanSocket: podman.socketPath,
        defaultPodmanSocket: join(dir.path, "default.sock"),
        scope: "user" as const,
        env: {},
        event: "local.store",
      };
      const { logger, records } = captureLogger("warn");
      const here = await registerSealedSecret({
        ...options,
        name: "app--HERE",
        stateDir: driverDir,
        logger,
      });
      expect(here.stored).toBe(true);
      expect(await readFile(here.mappingFile)).toEqual(mapping);
      expect(records()).toEqual([]);
      const elsewhere = await registerSealedSecret({
        ...options,
        name: "app--ELSEWHERE",
        stateDir: join(dir.path, "other-state"),
        logger,
      });
      expect(elsewhere.stored).toBe(false);
      expect(records()).toEqual([
        expect.objectContaining({ event: "local.store", secret_id: elsewhere.id }),
      ]);
    } finally {
      await podman.stop();
    }
  });
});
