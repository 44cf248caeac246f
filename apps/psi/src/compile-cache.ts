import { mkdirSync, statSync } from "node:fs";
import { constants, enableCompileCache } from "node:module";
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
  // node:os only without HOME: cli.js inlines this file, and loading it costs every command.
  const home = () => env["HOME"] || process.getBuiltinModule("node:os").homedir();
  const base = env["XDG_CACHE_HOME"] || join(home(), ".cache");
  return join(base, "psi", "node-compile-cache");
}

/**
 * Creates `dir` (0700) when missing and says whether compiled code may be kept there: V8
 * runs what it loads from it, so a directory owned by someone else or writable by group or
 * others is not used. Never throws (a read-only file system, no home directory: false).
 */
export function trustedCacheDir(dir: string, uid: number): boolean {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const stats = statSync(dir);
    return stats.isDirectory() && stats.uid === uid && (stats.mode & 0o022) === 0;
  } catch {
    return false;
  }
}

/** Enables Node's compile cache in `dir` (already checked); whether it did. Never throws. */
function enableNodeCompileCache(dir: string): boolean {
  try {
    return enableCompileCache(dir).status === constants.compileCacheStatus.ENABLED;
  } catch {
    return false;
  }
}

/** Enables Node's compile cache in `dir` when {@link trustedCacheDir}; whether it did. */
export function enableCompileCacheIn(dir: string, uid: number): boolean {
  return trustedCacheDir(dir, uid) && enableNodeCompileCache(dir);
}

/**
 * Turns on the caches of compiled code for this run and returns the directory that holds
 * them, or undefined when there is none to use. Node's compile cache covers the entry and
 * the dependencies loaded from node_modules; the directory also holds the code cache of
 * the CLI's own bundles (bundle-loader.ts). NODE_COMPILE_CACHE moves both (Node enabled
 * its own there already); NODE_DISABLE_COMPILE_CACHE turns both off. Best effort, never
 * throws.
 */
export function enablePsiCompileCache(
  env: Readonly<Record<string, string | undefined>>,
  uid: number,
): string | undefined {
  if (env["NODE_DISABLE_COMPILE_CACHE"]) return undefined;
  // NODE_COMPILE_CACHE names the directory for both: Node already keeps its own there.
  const dir = env["NODE_COMPILE_CACHE"] || compileCacheDir(env, uid);
  if (!trustedCacheDir(dir, uid)) return undefined;
  // the bundles' own code cache does not depend on Node's starting
  if (!env["NODE_COMPILE_CACHE"]) enableNodeCompileCache(dir);
  return dir;
}
