import { randomBytes } from "node:crypto";
import { dirname } from "node:path";
import type { Logger, PsiError } from "@psi/core";
import {
  ensureDir,
  isPsiError,
  readRegularFile,
  sweepStaleTempFiles,
  writeFileAtomic,
} from "@psi/core";
import {
  type CacheCipher,
  cacheKeyer,
  type DecodedCache,
  decodeCacheFile,
  encodeCacheFile,
  HMAC_KEY_LENGTH,
} from "@psi/envelope";
import { cacheError } from "./errors.js";
import { CACHE_FILE_MAX_BYTES, STALE_TEMP_MS } from "./limits.js";

/** Options naming a cache file and the (opened) backend that encrypts it. */
export interface CacheFileOptions {
  path: string;
  /** An opened cache backend (any @psi/core CacheBackend is a CacheCipher). */
  backend: CacheCipher;
}

/**
 * Reads and decrypts the whole cache file; `undefined` when it does not exist. Throws a
 * PsiError naming the path (`cache.auth_failed`, `cache.tag_mismatch`, ...; `fs.symlink`,
 * `fs.not_regular`, `fs.too_large` for something that is no cache file PSI wrote).
 */
export async function readCacheFile(options: CacheFileOptions): Promise<DecodedCache | undefined> {
  let bytes: Buffer;
  try {
    bytes = await readRegularFile(options.path, {
      maxBytes: CACHE_FILE_MAX_BYTES,
      what: "the cache file",
    });
  } catch (error) {
    if (isPsiError(error, "fs.not_found")) return undefined;
    throw cacheError(error, options.path);
  }
  try {
    return await decodeCacheFile(bytes, options.backend, { path: options.path });
  } catch (error) {
    throw cacheError(error, options.path);
  }
}

/** The contents {@link writeCacheFile} writes. */
export interface CacheFileContents {
  hmacKey: Uint8Array;
  entries: Map<string, Uint8Array>;
  /** Unix seconds; now when omitted. */
  writtenAt?: number;
}

/**
 * Encrypts and writes the whole cache file atomically, mode 0600 from creation (temp
 * file in the same directory, fsync, rename, fsync the directory), then removes temp
 * files that killed writers left there (older than {@link STALE_TEMP_MS}).
 */
export async function writeCacheFile(
  options: CacheFileOptions & { contents: CacheFileContents },
): Promise<void> {
  let bytes: Uint8Array;
  try {
    bytes = await encodeCacheFile(options.contents, options.backend);
  } catch (error) {
    throw cacheError(error, options.path, "write");
  }
  try {
    await ensureDir(dirname(options.path), 0o700);
    await writeFileAtomic(options.path, bytes, { mode: 0o600 });
  } catch (error) {
    throw cacheError(error, options.path, "write");
  }
  // Writers killed mid-save (crash, SIGKILL, power loss) leave dot-named temp files.
  await sweepStaleTempFiles(dirname(options.path), { olderThanMs: STALE_TEMP_MS });
}

/** One value setup fetched: the mapping it belongs to and its plaintext. */
export interface FetchedValue {
  mapping: Record<string, unknown>;
  value: Uint8Array;
}

/** Options of {@link saveCache}. */
export interface SaveCacheOptions extends CacheFileOptions {
  /**
   * The file's current contents if the caller already read them; `null` to start a fresh
   * file; omitted to read `path` now (unreadable → warning, fresh file).
   */
  previous?: DecodedCache | null;
  /** From {@link prepareCacheSave} (wins over `previous`): keys computed early are reused. */
  prepared?: PreparedCacheSave;
  /** Every value this run fetched. */
  fetched: Iterable<FetchedValue>;
  /**
   * True when the run fetched every workload of every fetching provider: the file then
   * holds exactly `fetched`. False (a partial run): add and update, remove nothing.
   */
  prune: boolean;
  logger?: Logger;
  /** Clock in milliseconds (for `written_at`); Date.now by default. */
  now?: () => number;
}

/** What {@link saveCache} did. */
export interface SaveCacheResult {
  path: string;
  /** Entries in the file written. */
  entries: number;
  added: number;
  updated: number;
  unchanged: number;
  pruned: number;
  /** True when a new HMAC key was drawn (no readable previous file). */
  freshHmacKey: boolean;
  /** Unix seconds written into the file. */
  writtenAt: number;
  /** Why the previous file could not be used, when it could not. */
  previousError?: PsiError;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

/**
 * What a cache save starts from: the previous file (or null for a fresh one), the HMAC
 * key the new file will use, and a keyer memoized per mapping object. Setup prepares it
 * before fetching and keys each source's secrets as they arrive, so the save after the
 * last fetch only encodes, encrypts and writes.
 */
export interface PreparedCacheSave {
  previous: DecodedCache | null;
  /** Why the previous file could not be used, when it could not (a fresh file follows). */
  previousError?: PsiError;
  hmacKey: Uint8Array;
  /** `cacheKey(hmacKey, mapping)`, computed once per mapping object. */
  keyOf(mapping: Record<string, unknown>): string;
}

/**
 * Reads the previous cache file (unreadable → a warning and a fresh file) and returns what
 * {@link saveCache} starts from. `previous` skips the read when the caller has the file.
 */
export async function prepareCacheSave(
  options: CacheFileOptions & { previous?: DecodedCache | null; logger?: Logger | undefined },
): Promise<PreparedCacheSave> {
  let previous = options.previous;
  let previousError: PsiError | undefined;
  if (previous === undefined) {
    try {
      previous = (await readCacheFile(options)) ?? null;
    } catch (error) {
      previousError = cacheError(error, options.path);
      options.logger?.warn(`existing cache ${options.path} is unreadable; writing a fresh one`, {
        event: "cache.previous_unreadable",
        path: options.path,
        error: previousError.message,
        code: previousError.code,
      });
      previous = null;
    }
  }
  const hmacKey = previous ? previous.hmacKey : randomBytes(HMAC_KEY_LENGTH);
  const keyer = cacheKeyer(hmacKey);
  // A Map, not a WeakMap: the mappings live as long as the save anyway (the fetched list
  // holds them), and 100,000 weak entries made every full GC of a setup run walk them as
  // ephemerons (mark-compact pauses of a 100k save halved without).
  const memo = new Map<object, string>();
  return {
    previous,
    ...(previousError === undefined ? {} : { previousError }),
    hmacKey,
    keyOf(mapping) {
      let key = memo.get(mapping);
      if (key === undefined) {
        key = keyer(mapping);
        memo.set(mapping, key);
      }
      return key;
    },
  };
}

/**
 * Setup's cache write (SPEC §6.5, §9): every fetched value goes under its HMAC key
 * (the previous file's key when it loaded, else a fresh one); with `prune` the file keeps
 * exactly the fetched set, otherwise entries are added and updated only. Written atomically.
 */
export async function saveCache(options: SaveCacheOptions): Promise<SaveCacheResult> {
  const prepared = options.prepared ?? (await prepareCacheSave(options));
  const { previous, previousError, hmacKey, keyOf } = prepared;
  const old = previous?.entries ?? new Map<string, Uint8Array>();
  const entries = options.prune ? new Map<string, Uint8Array>() : new Map(old);
  let added = 0;
  let updated = 0;
  let unchanged = 0;
  // Counted once per key, on its first value. With prune, `entries` starts empty, so its
  // growth tells a first value; otherwise it starts as a copy of `old` and a set does.
  // One lookup fewer per entry matters at 100,000 entries, where each misses the CPU cache.
  const seen = options.prune ? undefined : new Set<string>();
  for (const { mapping, value } of options.fetched) {
    const key = keyOf(mapping);
    let first: boolean;
    if (seen === undefined) {
      const size = entries.size;
      entries.set(key, value);
      first = entries.size !== size;
    } else {
      first = !seen.has(key);
      if (first) seen.add(key);
      entries.set(key, value);
    }
    if (first) {
      const before = old.get(key);
      if (before === undefined) added++;
      else if (sameBytes(before, value)) unchanged++;
      else updated++;
    }
  }
  // Every key of `old` not fetched again is dropped; those fetched were updated or unchanged.
  const pruned = options.prune ? old.size - updated - unchanged : 0;
  const writtenAt = Math.floor((options.now ?? Date.now)() / 1000);
  await writeCacheFile({
    path: options.path,
    backend: options.backend,
    contents: { hmacKey, entries, writtenAt },
  });
  return {
    path: options.path,
    entries: entries.size,
    added,
    updated,
    unchanged,
    pruned,
    freshHmacKey: !previous || previous.legacy,
    writtenAt,
    ...(previousError === undefined ? {} : { previousError }),
  };
}
