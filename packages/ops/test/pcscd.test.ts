import { readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { tempDir } from "@psi/testkit/tmp";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { pcscdSetupJson, setupPcscd } from "../src/index.js";

// setupPcscd without the CLI: rendering places each file, writing puts it there with its mode.

let dir: { path: string; cleanup: () => Promise<void> };
let env: Record<string, string>;
beforeEach(async () => {
  dir = await tempDir("psi-ops-pcscd-");
  env = { HOME: dir.path, XDG_CONFIG_HOME: join(dir.path, "config") };
});
afterEach(async () => {
  await dir.cleanup();
});

describe("setupPcscd", () => {
  it("renders the container setup into the scope's directories without writing", async () => {
    const result = await setupPcscd({ loaded: undefined, env, uid: 1000, mode: "container" });
    expect(result.written).toBe(false);
    expect(result.volume).toBe("pcscd-socket");
    expect(result.files.length).toBeGreaterThan(0);
    for (const file of result.files) {
      expect(file.path.endsWith(`/${file.name}`)).toBe(true);
      await expect(stat(file.path)).rejects.toMatchObject({ code: "ENOENT" });
    }
    expect(result.builtFrom).toBeUndefined();
    expect(result.daemonReload).toBeUndefined();
    // Nothing was built or reloaded: the JSON names neither.
    expect(pcscdSetupJson(result)).toEqual({
      volume: "pcscd-socket",
      mode: "container",
      written: false,
      files: result.files,
      commands: result.commands,
      notes: result.notes,
    });
    const built = { ...result, builtFrom: { dir: "/b", fromRootfs: true } };
    expect(pcscdSetupJson(built)).toMatchObject({
      built: { image: result.image, from_rootfs: true },
    });
    expect(pcscdSetupJson(built)).not.toHaveProperty("image");
  });

  it("writes every file into outputDir with its mode", async () => {
    const out = join(dir.path, "out");
    const result = await setupPcscd({
      loaded: undefined,
      env,
      uid: 1000,
      mode: "host",
      outputDir: out,
    });
    expect(result.written).toBe(true);
    for (const file of result.files) {
      expect(file.path).toBe(join(out, file.name));
      expect(await readFile(file.path, "utf8")).toBe(file.text);
      expect((await stat(file.path)).mode & 0o777).toBe(file.mode);
    }
  });
});

describe("setupPcscd input", () => {
  it("refuses to build a pcscd container in host mode, and writes nothing", async () => {
    for (const extra of [
      { buildOnly: true },
      { buildDir: join(dir.path, "b") },
      { systemdDir: join(dir.path, "q") },
    ]) {
      await expect(
        setupPcscd({ loaded: undefined, env, uid: 1000, mode: "host", ...extra }),
      ).rejects.toMatchObject({ code: "nitrokeyhsm.pcscd_host_build" });
    }
    expect(await readdir(dir.path)).toEqual([]);
  });
});
