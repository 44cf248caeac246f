import { mkdirSync, statSync } from "node:fs";
import { constants, enableCompileCache } from "node:module";
import { homedir } from "node:os";
import { join } from "node:path";

/**
 * Where V8's compiled code for the CLI is kept between runs: `/var/cache/psi` for root,
 * `$XDG_CACHE_HOME/psi` (or `~/.cache/psi`) otherwise — never inside the package.
 */
export function compileCacheDir(
  env: Readonly<Record<string, string | undefined>>,
  uid: number,
): string {
  if (uid === 0) return "/var/cache/psi/node-compile-cache";
  const base = env["XDG_CACHE_HOME"] || join(env["HOME"] || homedir(), ".cache");
  return join(base, "psi", "node-compile-cache");
}

/**
 * Turns on Node's on-disk compile cache so a command skips parsing and compiling the
 * bundle it ran last time. Best effort, never throws.
 */
export function enablePsiCompileCache(
  env: Readonly<Record<string, string | undefined>>,
  uid: number,
): void {
  // NODE_COMPILE_CACHE: Node enabled it already, in the directory the operator chose.
  if (env["NODE_DISABLE_COMPILE_CACHE"] || env["NODE_COMPILE_CACHE"]) return;
  enableCompileCacheIn(compileCacheDir(env, uid), uid);
}

/**
 * Enables the compile cache in `dir` (created 0700) and says whether it did: an
 * unwritable directory, or one owned by someone else or writable by group or others
 * (V8 would load code from it), leaves it off.
 */
export function enableCompileCacheIn(dir: string, uid: number): boolean {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const stats = statSync(dir);
    if (stats.uid !== uid || (stats.mode & 0o022) !== 0) return false;
    const { status } = enableCompileCache(dir);
    return status === constants.compileCacheStatus.ENABLED;
  } catch {
    // read-only file system, no home directory, ...: start without the cache
    return false;
  }
}
