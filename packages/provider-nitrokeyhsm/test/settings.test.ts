import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { loadConfig } from "@psi/core";
import { tempDir } from "@psi/testkit/tmp";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { nitrokeyHsmProviderSettings, nitrokeyHsmSettings } from "../src/index.js";
import { recordingLogger } from "./helpers.js";

// What the nitrokeyhsm operations take from a real configuration file.

let dir: { path: string; cleanup: () => Promise<void> };
beforeEach(async () => {
  dir = await tempDir("psi-nkhsm-settings-");
});
afterEach(async () => dir.cleanup());

async function load(yaml: string) {
  const path = join(dir.path, "config.yaml");
  await writeFile(path, `state_dir: ${join(dir.path, "state")}\n${yaml}`);
  return loadConfig({ path, env: { HOME: dir.path }, uid: 1000 });
}

describe("nitrokeyHsmSettings", () => {
  it("takes the block and state_dir; no warning when the block is there", async () => {
    const loaded = await load("providers:\n  nitrokeyhsm: { slot: 3, oaep_hash: sha1 }\n");
    const logger = recordingLogger();
    const settings = nitrokeyHsmSettings(loaded, logger);
    expect(settings).toMatchObject({ configured: true, stateDir: join(dir.path, "state") });
    expect(settings.config).toMatchObject({ slot: 3, oaep_hash: "sha1" });
    expect(logger.lines).toEqual([]);
    expect(nitrokeyHsmProviderSettings(loaded)).toEqual(settings);
  });

  it("without the block: the defaults and a warning; storing refuses", async () => {
    const loaded = await load("cache: { backend: hsm }\n");
    const logger = recordingLogger();
    expect(nitrokeyHsmSettings(loaded, logger)).toEqual({
      config: undefined,
      stateDir: join(dir.path, "state"),
      configured: false,
    });
    expect(logger.lines).toMatchObject([
      { level: "warn", fields: { event: "config.defaults", provider: "nitrokeyhsm" } },
    ]);
    expect(() => nitrokeyHsmProviderSettings(loaded)).toThrow(
      expect.objectContaining({
        code: "nitrokeyhsm.not_configured",
        hint: expect.stringContaining("providers: { nitrokeyhsm: {} }"),
      }),
    );
  });
});
