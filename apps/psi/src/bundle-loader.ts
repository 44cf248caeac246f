// Loads the CLI's application (dist/app.cjs, built from app-bundle.ts) as one classic
// script with V8's code cache. Node's own compile cache stores what V8 compiled right after
// parsing, before anything ran, so every function a command calls is still compiled on
// its first call: reading a four-line configuration with `yaml` costs ~7 ms that way. The
// code cache written here is taken after the command ran (at exit, or a few seconds into
// a long-running one), so it holds the bytecode of everything the command used, and the
// next run of that command compiles almost nothing (docs/performance.md).
//
// The cache is V8's own format: V8 checks its version, its flags and the source's length
// and refuses data that does not match; psi adds the bundle's SHA-256 (stamped on its first
// line by the build) and the Node version to the file name, so a reinstalled bundle never
// meets another build's code. The directory is the compile cache's (compile-cache.ts),
// used only when it is the user's own and closed to group and others; files are 0600 and
// replaced atomically. No imports: cli.ts inlines this file.

const STAMP = /^\/\/ psi-app-bundle sha256=([0-9a-f]{64})\n/;
/** A code cache larger than this is not read (the bundle's is well under 2 MB). */
const MAX_CACHE_BYTES = 64 * 1024 * 1024;
/** Another build's cache of the same kind, untouched this long, is removed. */
const STALE_AFTER_MS = 24 * 60 * 60 * 1000;
/**
 * A cache V8 took, written this long ago, is measured again at exit: it holds what the run
 * that wrote it compiled (a first `cache status` before any cache.enc existed never read a
 * header), so it is replaced when this run's is larger, and marked as checked otherwise.
 */
const RECHECK_AFTER_MS = 24 * 60 * 60 * 1000;

/** What became of the code cache in one load. */
export type CodeCacheState =
  /** no usable cache directory, or the bundle carries no stamp: compiled from source */
  | "off"
  /** no cache yet for this bundle, command and Node: compiled from source, cache written */
  | "created"
  /** V8 used the cache */
  | "accepted"
  /** V8 used the cache, a day old or more: it is measured again at exit (RECHECK_AFTER_MS) */
  | "rechecked"
  /** V8 refused the cache (other flags, a damaged file): compiled from source, rewritten */
  | "rejected";

export interface BundleOptions {
  /** A directory trusted to hold compiled code (compile-cache.ts), or none. */
  cacheDir?: string | undefined;
  /** Which run the cache is for (`serve`, `cache-status`, `cli`): each has its own file. */
  kind: string;
  uid: number;
  /** Also write the cache this long after loading, for commands that keep running. */
  writeAfterMs?: number | undefined;
}

export interface LoadedBundle<T> {
  exports: T;
  codeCache: CodeCacheState;
  /** The code cache file this run read or writes. */
  cacheFile?: string | undefined;
}

/** Node's built-ins without their ESM facades (see tsup.config.ts). */
const fs = () => process.getBuiltinModule("node:fs");

/**
 * Runs the bundle at `file` and returns its exports. The bundle is the build's wrapped
 * CommonJS: `(function (exports, require, module, __filename, __dirname, importMetaUrl)
 * {...})`, whose `require` resolves from the bundle's own directory.
 */
export function loadBundle<T>(file: string, options: BundleOptions): LoadedBundle<T> {
  const { createRequire } = process.getBuiltinModule("node:module");
  const { Script } = process.getBuiltinModule("node:vm");
  const { dirname } = process.getBuiltinModule("node:path");
  const { pathToFileURL } = process.getBuiltinModule("node:url");
  // The build writes ASCII only (tsup.config.ts escapes the rest): latin1 is the cheapest decode.
  const source = fs().readFileSync(file, "latin1");
  const stamp = STAMP.exec(source.slice(0, 100))?.[1];
  const cacheFile =
    options.cacheDir === undefined || stamp === undefined
      ? undefined
      : `${options.cacheDir}/${cacheName(stamp.slice(0, 24), options.kind)}`;
  const cached = cacheFile === undefined ? undefined : readCache(cacheFile, options.uid);
  const cachedData = cached?.data;
  const script = new Script(source, { filename: file, cachedData });
  let codeCache: CodeCacheState = "off";
  if (cacheFile !== undefined) {
    codeCache =
      cached === undefined
        ? "created"
        : script.cachedDataRejected
          ? "rejected"
          : Date.now() - cached.mtimeMs >= RECHECK_AFTER_MS
            ? "rechecked"
            : "accepted";
    if (codeCache !== "accepted") {
      let written = false;
      const write = () => {
        if (written) return;
        written = true;
        try {
          const data = script.createCachedData();
          if (codeCache === "rechecked" && data.length <= (cachedData?.length ?? 0)) {
            // nothing new compiled: check again in a day
            const now = new Date();
            fs().utimesSync(cacheFile, now, now);
            return;
          }
          writeCache(cacheFile, data);
          dropOtherBuilds(cacheFile, options.kind);
        } catch {
          // best effort, and at exit: never change how the command ends
        }
      };
      process.once("exit", write);
      if (options.writeAfterMs !== undefined) setTimeout(write, options.writeAfterMs).unref();
    }
  }
  const wrapper = script.runInThisContext() as (...args: unknown[]) => void;
  const module = { exports: {} as T };
  wrapper.call(
    module.exports,
    module.exports,
    createRequire(file),
    module,
    file,
    dirname(file),
    pathToFileURL(file).href,
  );
  return { exports: module.exports, codeCache, cacheFile };
}

/** The code cache file of one build, command kind and Node. */
function cacheName(build: string, kind: string): string {
  return `psi-app-${build}-${kind}-${process.version}-${process.arch}.v8cache`;
}

/**
 * Removes this kind's caches of other builds or Node versions written more than a day ago
 * (an upgrade leaves the old one behind). A recent one stays: two installs of psi run in
 * turn (npm's and a checkout's) would otherwise delete each other's cache on every run.
 */
function dropOtherBuilds(kept: string, kind: string): void {
  const { readdirSync, rmSync, lstatSync } = fs();
  const dir = kept.slice(0, kept.lastIndexOf("/"));
  const pattern = /^psi-app-[0-9a-f]{24}-([a-z-]+)-v[\d.]+-\w+\.v8cache$/;
  const dayAgo = Date.now() - STALE_AFTER_MS;
  try {
    for (const name of readdirSync(dir)) {
      const path = `${dir}/${name}`;
      if (path === kept || pattern.exec(name)?.[1] !== kind) continue;
      if (lstatSync(path).mtimeMs < dayAgo) rmSync(path, { force: true });
    }
  } catch {
    // the directory went away: nothing to tidy
  }
}

/**
 * The cache file's bytes and when it was written, when it is a regular file of ours that
 * nobody else can write, of a sane size; undefined otherwise (missing, a symlink, a FIFO:
 * compiled from source).
 */
function readCache(path: string, uid: number): { data: Buffer; mtimeMs: number } | undefined {
  const { openSync, fstatSync, readSync, closeSync, constants } = fs();
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    return undefined;
  }
  try {
    const stats = fstatSync(fd);
    if (!stats.isFile() || stats.uid !== uid || (stats.mode & 0o022) !== 0) return undefined;
    if (stats.size === 0 || stats.size > MAX_CACHE_BYTES) return undefined;
    const data = Buffer.allocUnsafe(stats.size);
    let read = 0;
    while (read < data.length) {
      const n = readSync(fd, data, read, data.length - read, read);
      if (n === 0) break;
      read += n;
    }
    return read === data.length ? { data, mtimeMs: stats.mtimeMs } : undefined;
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

/** Writes the cache 0600 from creation and renames it into place; best effort. */
function writeCache(path: string, data: Buffer): void {
  const { openSync, writeSync, fsyncSync, closeSync, renameSync, rmSync } = fs();
  const temp = `${path}.${process.pid}.tmp`;
  try {
    const fd = openSync(temp, "wx", 0o600);
    try {
      let written = 0;
      while (written < data.length) written += writeSync(fd, data, written);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, path);
  } catch {
    // a full or read-only disk: the next run compiles from source again
    rmSync(temp, { force: true });
  }
}
