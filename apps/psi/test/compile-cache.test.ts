import { execFileSync } from "node:child_process";
import { chmod, mkdir, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { tempDir } from "@psi/testkit/tmp";
import { afterEach, describe, expect, it } from "vitest";
import { compileCacheDir, enablePsiCompileCache } from "../src/compile-cache.js";

const source = fileURLToPath(new URL("../src/compile-cache.ts", import.meta.url));
const uid = process.getuid?.() ?? 0;

let scratch: { path: string; cleanup: () => Promise<void> } | undefined;
afterEach(async () => {
  await scratch?.cleanup();
  scratch = undefined;
});

/** Enables the cache in `dir` in a fresh Node process (it is process-wide); what it reports. */
function enableIn(dir: string): { enabled: boolean; dir: string | null } {
  const script = `
    const { enableCompileCacheIn } = await import(${JSON.stringify(source)});
    const { getCompileCacheDir } = await import("node:module");
    const enabled = enableCompileCacheIn(${JSON.stringify(dir)}, ${uid});
    console.log(JSON.stringify({ enabled, dir: getCompileCacheDir() ?? null }));
  `;
  const out = execFileSync(process.execPath, ["--input-type=module", "-e", script], {
    encoding: "utf8",
    env: { PATH: process.env["PATH"] ?? "" },
  });
  return JSON.parse(out) as { enabled: boolean; dir: string | null };
}

describe("Node's compile cache for the CLI", () => {
  it("lives under the scope's cache directory, never in the package", () => {
    expect(compileCacheDir({}, 0)).toBe("/var/cache/psi/node-compile-cache");
    expect(compileCacheDir({ XDG_CACHE_HOME: "/x/cache", HOME: "/home/u" }, 1000)).toBe(
      "/x/cache/psi/node-compile-cache",
    );
    expect(compileCacheDir({ HOME: "/home/u" }, 1000)).toBe(
      "/home/u/.cache/psi/node-compile-cache",
    );
  });

  it("is created 0700 and used when the directory is the user's own", async () => {
    scratch = await tempDir("psi-compile-cache-");
    const dir = join(scratch.path, "cache", "psi");
    const result = enableIn(dir);
    expect(result.enabled).toBe(true);
    expect(result.dir?.startsWith(dir)).toBe(true);
    expect(await readdir(dir)).not.toHaveLength(0);
  });

  it("stays off, silently, when the directory is writable by others or cannot be created", async () => {
    scratch = await tempDir("psi-compile-cache-");
    const open = join(scratch.path, "open");
    await mkdir(open);
    await chmod(open, 0o777);
    expect(enableIn(open)).toEqual({ enabled: false, dir: null });
    const file = join(scratch.path, "a-file");
    await writeFile(file, "");
    expect(enableIn(join(file, "psi"))).toEqual({ enabled: false, dir: null });
  });

  it("NODE_COMPILE_CACHE moves the bundles' code cache too; NODE_DISABLE_COMPILE_CACHE turns it off", async () => {
    scratch = await tempDir("psi-compile-cache-");
    const moved = join(scratch.path, "moved");
    // (Node already enabled its own cache there: only the directory is checked and returned)
    expect(enablePsiCompileCache({ NODE_COMPILE_CACHE: moved, HOME: scratch.path }, uid)).toBe(
      moved,
    );
    const open = join(scratch.path, "open");
    await mkdir(open);
    await chmod(open, 0o777);
    expect(enablePsiCompileCache({ NODE_COMPILE_CACHE: open }, uid)).toBeUndefined();
    expect(
      enablePsiCompileCache({ NODE_COMPILE_CACHE: moved, NODE_DISABLE_COMPILE_CACHE: "1" }, uid),
    ).toBeUndefined();
  });
});
