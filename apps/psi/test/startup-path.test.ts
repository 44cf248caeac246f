// What the hot commands load and start, checked from Node's own list of loaded modules
// (process.moduleLoadList), not by timing: `psi cache status` runs without node:crypto and
// node:fs/promises, writes stdout on its descriptor, and leaves stderr alone when it logs
// nothing (docs/performance.md says what each costs).
import { spawnSync } from "node:child_process";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { tempDir } from "@psi/testkit/tmp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const CLI = fileURLToPath(new URL("../dist/cli.js", import.meta.url));

let dir: { path: string; cleanup: () => Promise<void> };
let config: string;
let probe: string;
beforeAll(async () => {
  dir = await tempDir("psi-startup-path-");
  await mkdir(join(dir.path, "state"), { mode: 0o700 });
  config = join(dir.path, "config.yaml");
  await writeFile(
    config,
    `state_dir: ${join(dir.path, "state")}\nproviders: { local: {} }\ncache: { enabled: true, backend: keyfile, key_file: ${join(dir.path, "key")} }\n`,
  );
  // Preloaded into the psi process: at exit, the modules Node loaded.
  probe = join(dir.path, "probe.mjs");
  await writeFile(
    probe,
    `process.on("exit", () => {
      const loaded = process.moduleLoadList;
      process.getBuiltinModule("node:fs").writeFileSync(${JSON.stringify(join(dir.path, "loaded.json"))}, JSON.stringify({ loaded }));
    });`,
  );
});
afterAll(async () => {
  await dir?.cleanup();
});

/** Runs psi with stdout on a pipe, or on /dev/null; stderr on a pipe. */
async function run(args: string[], stdout: "pipe" | "null") {
  const result = spawnSync(process.execPath, ["--import", probe, CLI, ...args], {
    encoding: "utf8",
    stdio: ["ignore", stdout === "pipe" ? "pipe" : "ignore", "pipe"],
    env: {
      PATH: process.env["PATH"] ?? "",
      HOME: dir.path,
      XDG_CACHE_HOME: join(dir.path, "cache"),
      PSI_CONFIG: config,
    },
  });
  const { loaded } = JSON.parse(await readFile(join(dir.path, "loaded.json"), "utf8")) as {
    loaded: string[];
  };
  return { ...result, loaded: new Set(loaded) };
}

describe("psi cache status's start-up path", () => {
  it("loads neither node:crypto nor node:fs/promises, and writes stdout on its descriptor", async () => {
    const { status, stdout, stderr, loaded } = await run(["--json", "cache", "status"], "pipe");
    expect({ status, stderr }).toEqual({ status: 0, stderr: "" });
    expect(JSON.parse(stdout)).toMatchObject({ exists: false, backend: "keyfile" });
    // OpenSSL and readline (which node:fs/promises brings) stay out of this command
    expect(loaded.has("NativeModule crypto")).toBe(false);
    expect(loaded.has("NativeModule fs/promises")).toBe(false);
    // node:os (HOME is set) and node:fs's directory reader are not needed either
    expect(loaded.has("NativeModule os")).toBe(false);
    expect(loaded.has("NativeModule internal/fs/dir")).toBe(false);
    // the output went through the descriptor: no stream, no socket machinery for the pipe
    expect(loaded.has("NativeModule net")).toBe(false);
    // the app came from the code-cached bundle, not from Node's module loaders
    expect(loaded.has("NativeModule vm")).toBe(true);
  });

  it("without HOME, the user scope's paths still come from node:os (loaded on first use)", async () => {
    const userScope = join(dir.path, "user-scope.yaml");
    await writeFile(userScope, "scope: user\n");
    const env = { PATH: process.env["PATH"] ?? "" };
    const home = spawnSync(process.execPath, ["-p", "require('node:os').homedir()"], {
      encoding: "utf8",
      env,
    }).stdout.trim();
    expect(home).toMatch(/^\//);
    const status = spawnSync(process.execPath, [CLI, "--json", "status"], {
      encoding: "utf8",
      env: { ...env, PSI_CONFIG: userScope },
    });
    expect(status.stderr).toBe("");
    expect(JSON.parse(status.stdout).cache.path).toBe(`${home}/.local/share/psi/cache.enc`);
  });

  it("builds Node's stream only for a terminal or a device (here /dev/null)", async () => {
    const { status, loaded } = await run(["cache", "status"], "null");
    expect(status).toBe(0);
    // /dev/null is a character device: Node's own stdout stream writes there
    expect(loaded.has("NativeModule internal/fs/sync_write_stream")).toBe(true);
  });
});
