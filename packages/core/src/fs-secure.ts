import { randomBytes } from "node:crypto";
import { chmodSync, constants, mkdirSync, statSync } from "node:fs";
import { type FileHandle, lstat, open, readdir, rename, unlink } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { errorMessage, PsiError } from "./errors.js";

/** Options of {@link writeFileAtomic}. */
export interface WriteFileAtomicOptions {
  /** The file's permission bits, set when it is created (default 0600). */
  mode?: number;
}

const CREATE_FLAGS =
  constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY | constants.O_NOFOLLOW;

function hintFor(error: unknown, dir: string): string | undefined {
  switch ((error as NodeJS.ErrnoException).code) {
    case "EACCES":
    case "EPERM":
      return `check that PSI may write to ${dir}`;
    case "EROFS":
      return `${dir} is on a read-only file system`;
    case "ENOSPC":
    case "EDQUOT":
      return `free some space on the file system of ${dir}`;
    case "ENOENT":
      return `create ${dir} first`;
    default:
      return undefined;
  }
}

const TEMP_PATTERN = /^\.psi-[0-9a-f]{16}\.tmp$/;

/** Where the temp file goes: same directory (rename stays atomic), a dot name (listings skip it). */
function tempName(dir: string): string {
  return join(dir, `.psi-${randomBytes(8).toString("hex")}.tmp`);
}

/**
 * Removes temp files that writers killed mid-write left in `dir` (a SIGKILL leaves the
 * old file intact but its temp file behind). Only files older than `olderThanMs` go, so
 * a write in flight in another process is never touched. Returns how many were removed.
 */
export async function sweepStaleTempFiles(
  dir: string,
  options: { olderThanMs?: number; now?: () => number } = {},
): Promise<number> {
  const olderThan = options.olderThanMs ?? 10 * 60 * 1000;
  const now = options.now?.() ?? Date.now();
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return 0;
  }
  let removed = 0;
  for (const name of names) {
    if (!TEMP_PATTERN.test(name)) continue;
    const path = join(dir, name);
    try {
      if (now - (await lstat(path)).mtimeMs < olderThan) continue;
      await unlink(path);
      removed++;
    } catch {
      // Gone already (another sweeper) or unreadable: nothing to do.
    }
  }
  return removed;
}

async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await handle.sync();
  } catch (error) {
    // Some file systems cannot fsync a directory; the rename is done either way.
    if ((error as NodeJS.ErrnoException).code !== "EINVAL") throw error;
  } finally {
    await handle.close();
  }
}

/**
 * Replaces `path` with `data` so that a reader or a crash sees the old file or the new
 * one, never a mix: a temp file in the same directory (name starting with "."), created
 * with O_EXCL and its final mode (never wider, whatever the umask), written, fsynced,
 * renamed over `path`, then the directory fsynced. On failure the temp file is removed
 * and `path` is untouched; throws `fs.write_failed`.
 */
export async function writeFileAtomic(
  path: string,
  data: Uint8Array | string,
  options: WriteFileAtomicOptions = {},
): Promise<void> {
  const mode = options.mode ?? 0o600;
  const dir = dirname(path);
  let temp: string | undefined;
  let handle: FileHandle | undefined;
  try {
    for (let attempt = 0; handle === undefined; attempt++) {
      temp = tempName(dir);
      try {
        handle = await open(temp, CREATE_FLAGS, mode);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "EEXIST" || attempt >= 5) throw error;
      }
    }
    // The umask can only remove bits: widen to exactly `mode` before any data is written.
    if (((await handle.stat()).mode & 0o7777) !== mode) await handle.chmod(mode);
    await handle.writeFile(data);
    await handle.sync();
    await handle.close();
    handle = undefined;
    await rename(temp as string, path);
    temp = undefined;
    await fsyncDir(dir);
  } catch (error) {
    await handle?.close().catch(() => {});
    if (temp !== undefined) await unlink(temp).catch(() => {});
    throw new PsiError("fs.write_failed", `cannot write ${path}: ${errorMessage(error)}`, {
      cause: error,
      hint: hintFor(error, dir),
    });
  }
}

/**
 * `mkdir -p`: creates the missing directories of `path` one by one, top down, and returns
 * the first one it created. Not `mkdir(path, { recursive: true })`: Node's loop retries
 * forever (100% CPU, deaf to SIGTERM) where mkdir(2) answers ENOENT under an existing
 * parent, as in /proc (issue 9: `psi serve --socket /proc/nope/x.sock`). Synchronous: a
 * few stat and mkdir calls on local directories, made before serve listens, cost less
 * than their thread-pool round trips.
 */
function mkdirParents(path: string, mode: number): string | undefined {
  const missing: string[] = [];
  for (let current = resolve(path); ; ) {
    if (statSync(current, { throwIfNoEntry: false }) !== undefined) break;
    missing.unshift(current);
    const parent = dirname(current);
    if (parent === current) break;
    current = parent;
  }
  let first: string | undefined;
  for (const dir of missing) {
    try {
      mkdirSync(dir, { mode });
      first ??= dir;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
  }
  return first;
}

/**
 * Creates `path` (and missing parents) with `mode` (default 0700); an existing directory
 * is left as it is. Throws `fs.mkdir_failed`, also when `path` exists and is no directory.
 */
export async function ensureDir(path: string, mode = 0o700): Promise<void> {
  try {
    const created = mkdirParents(path, mode);
    const info = statSync(path);
    if (!info.isDirectory()) throw new Error(`${basename(path)} exists and is not a directory`);
    // mkdir's mode went through the umask, which only removes bits: widen to exactly `mode`.
    if (created !== undefined && (info.mode & 0o7777) !== mode) chmodSync(path, mode);
  } catch (error) {
    throw new PsiError(
      "fs.mkdir_failed",
      `cannot create directory ${path}: ${errorMessage(error)}`,
      {
        cause: error,
        hint: hintFor(error, dirname(path)),
      },
    );
  }
}
