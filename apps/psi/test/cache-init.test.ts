import { readdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { readCacheFile, readCacheStatus } from "@psi/cache";
import { createKeyfileCacheBackend } from "@psi/cache-keyfile";
import { tempDir } from "@psi/testkit/tmp";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { runPsi } from "./run-psi.js";

function psi(args: string[], env: Record<string, string>) {
  return runPsi(args, { env });
}

describe("psi cache init", () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  let env: Record<string, string>;
  beforeEach(async () => {
    dir = await tempDir("psi-cache-init-");
    env = {
      HOME: join(dir.path, "home"),
      XDG_RUNTIME_DIR: join(dir.path, "run"),
      PATH: process.env["PATH"] ?? "",
    };
  });
  afterEach(() => dir.cleanup());

  it("checks that state_dir is writable before it writes the key; the retry then works", async () => {
    const config = join(dir.path, "config.yaml");
    const keyFile = join(dir.path, "etc", "cache.keyfile");
    // A state_dir below a regular file cannot be created, even by root.
    await writeFile(join(dir.path, "blocker"), "");
    await writeFile(
      config,
      `state_dir: ${join(dir.path, "blocker", "state")}\ncache: { backend: keyfile, key_file: ${keyFile} }\n`,
    );
    const run = await psi(["-c", config, "cache", "init", "--backend", "keyfile"], env);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`cannot write the cache in ${join(dir.path, "blocker", "state")}`);
    expect(run.stderr).toContain("nothing was written");
    await expect(stat(keyFile)).rejects.toThrow();
    await writeFile(
      config,
      `state_dir: ${join(dir.path, "state")}\ncache: { backend: keyfile, key_file: ${keyFile} }\n`,
    );
    const retry = await psi(["-c", config, "cache", "init", "--backend", "keyfile"], env);
    expect(retry.stderr).toBe("");
    expect(retry.code).toBe(0);
    expect((await readdir(join(dir.path, "state"))).sort()).toEqual(["cache.enc"]);
  });

  it("an explicitly named configuration that does not exist is an error for every command", async () => {
    const missing = join(dir.path, "no-such-config.yaml");
    for (const args of [
      ["cache", "status"],
      ["status"],
      ["install", "--stdout"],
      ["cache", "init", "--backend", "keyfile"],
      ["setup", "--dry-run"],
    ]) {
      for (const [argv, extra] of [
        [["-c", missing, ...args], {}],
        [args, { PSI_CONFIG: missing }],
      ] as const) {
        const run = await psi([...argv], { ...env, ...extra });
        expect(run.code, argv.join(" ")).toBe(1);
        expect(run.stderr, argv.join(" ")).toContain(`no configuration file at ${missing}`);
        expect(run.stdout, argv.join(" ")).toBe("");
      }
    }
    // Without --config/PSI_CONFIG a missing default file still means "use the defaults".
    const defaults = await psi(["cache", "status"], env);
    expect(defaults.code).toBe(0);
  });

  it("lists the backends and exits 1 without --backend", async () => {
    const run = await psi(["cache", "init"], env);
    expect(run.code).toBe(1);
    for (const name of ["tpm", "hsm", "keyfile"]) expect(run.stderr).toContain(name);
  });

  it("writes a 0600 key and an empty cache that it decrypts (configured paths)", async () => {
    const config = join(dir.path, "config.yaml");
    const keyFile = join(dir.path, "etc", "cache.keyfile");
    const cachePath = join(dir.path, "state", "cache.enc");
    await writeFile(
      config,
      `state_dir: ${join(dir.path, "state")}\ncache: { backend: keyfile, key_file: ${keyFile} }\n`,
    );
    const run = await psi(["-c", config, "cache", "init", "--backend", "keyfile"], env);
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(keyFile);
    expect(run.stdout).not.toContain("note:");
    expect((await stat(keyFile)).mode & 0o777).toBe(0o600);
    expect((await stat(cachePath)).mode & 0o777).toBe(0o600);
    expect(await readCacheStatus(cachePath)).toMatchObject({ tag: 3, backend: "keyfile" });
    const backend = createKeyfileCacheBackend({ path: keyFile });
    await backend.open();
    const contents = await readCacheFile({ path: cachePath, backend });
    expect(contents?.entries.size).toBe(0);

    // an existing key is kept unless --force
    const key = await readFile(keyFile);
    const again = await psi(["-c", config, "cache", "init", "--backend", "keyfile"], env);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain("already exists");
    expect(again.stderr).toContain("--force");
    expect((await readFile(keyFile)).equals(key)).toBe(true);
    const forced = await psi(
      ["-c", config, "cache", "init", "--backend", "keyfile", "--force"],
      env,
    );
    expect(forced.code).toBe(0);
    expect((await readFile(keyFile)).equals(key)).toBe(false);
  });

  it("takes --key-path, works without a configuration file, and says what to configure", async () => {
    const keyPath = join(dir.path, "custom.key");
    // No file at the scope's default (~/.config/psi/config.yaml under the temp HOME).
    const run = await psi(
      ["cache", "init", "--backend", "keyfile", "--key-path", keyPath, "--json"],
      env,
    );
    expect(run.code).toBe(0);
    const out = JSON.parse(run.stdout) as { key_path: string; cache_path: string; notes: string[] };
    expect(out.key_path).toBe(keyPath);
    expect(out.cache_path).toBe(join(dir.path, "home", ".local", "share", "psi", "cache.enc"));
    expect(out.notes.join("\n")).toContain(`cache.key_file: ${keyPath}`);
    expect(out.notes.join("\n")).toContain("backend: keyfile");
    expect((await stat(keyPath)).mode & 0o777).toBe(0o600);
  });
});
