import { type FSWatcher, statSync, watch } from "node:fs";
import { open } from "node:fs/promises";
import { basename, dirname } from "node:path";
import type { Logger } from "@psi/core";
import { type CacheCipher, cacheKey, canonicalMapping, decodeCacheFile } from "@psi/envelope";
import { cacheError } from "./errors.js";

/** Options of {@link createCacheStore}. */
export interface CacheStoreOptions {
  /** `cache.path` or `<state_dir>/cache.enc`. */
  path: string;
  /**
   * The opened cache backend. Without one the store keeps only values fetched live
   * (the backend failed to open, or none is configured): nothing is read from disk.
   */
  backend?: CacheCipher | undefined;
  logger: Logger;
  /** Clock in milliseconds; Date.now by default. */
  now?: () => number;
  /**
   * Let inotify say when the file changed (long-running serve): `reloadIfChanged` then
   * stats only after a watch event for the file, or once `checkIntervalMs` has passed
   * since the last stat (the safety net for a watch that misses something). Off by default:
   * every call stats.
   */
  watch?: boolean;
  /** With `watch`: the longest time between two stats (default 1000 ms). */
  checkIntervalMs?: number;
}

/** Where a cached value came from: the decrypted cache file, or a live fetch kept in memory. */
export type CacheSource = "file" | "memory";

/** A value found in the cache. */
export interface CacheHit {
  value: Uint8Array;
  source: CacheSource;
}

/** A snapshot of the store, for logs, `psi status` and metrics. */
export interface CacheStats {
  path: string;
  /** True when a backend is present (the file is read). */
  backend: boolean;
  /** True once the file was read successfully (a missing file reads as empty). */
  loaded: boolean;
  /** Whether the file existed at the last successful read. */
  fileExists: boolean;
  fileEntries: number;
  memoryEntries: number;
  /** `written_at` of the loaded file, Unix seconds. */
  writtenAt: number | undefined;
  /** When the file was last read, milliseconds. */
  loadedAt: number | undefined;
  /** The loaded file had a version 1 payload (read as empty). */
  legacy: boolean;
  /** Code of the last failed read (`cache.auth_failed`, ...), cleared by a good one. */
  lastError: string | undefined;
}

/**
 * serve's in-memory cache (SPEC §4.3, §6.5): the file decrypted once into a map keyed by
 * HMAC of the canonical mapping, plus values fetched live since. Lookups never decrypt.
 */
export interface CacheStore {
  readonly path: string;
  /** Reads and decrypts the whole file (missing = empty). Throws a PsiError naming the path. */
  load(): Promise<CacheStats>;
  /**
   * Re-reads the file when a cheap stat (inode, size, mtime, ctime) differs from the last
   * read; concurrent callers share one reload. Never throws: a failed reload is logged and
   * the previous contents stay. Resolves true when new contents were loaded.
   */
  reloadIfChanged(): Promise<boolean>;
  /** The cached value of a mapping: the file first (setup's copy is the freshest), then memory. */
  lookup(mapping: Record<string, unknown>): CacheHit | undefined;
  /** {@link lookup} without the source. */
  get(mapping: Record<string, unknown>): Uint8Array | undefined;
  /** Keeps a live-fetched value in memory; reloads never drop it, nothing writes it to disk. */
  remember(mapping: Record<string, unknown>, value: Uint8Array): void;
  stats(): CacheStats;
  /** Stops watching the file (the store stays usable and stats on every call). */
  close(): void;
}

interface MemoryEntry {
  mapping: Record<string, unknown>;
  value: Uint8Array;
}

const MISSING = "missing";
const UNKNOWN = "unknown";

// Anything that replaces the file changes at least one of these; ctime catches an
// in-place rewrite within one mtime tick.
function signatureOf(path: string): string {
  try {
    const stat = statSync(path, { bigint: true, throwIfNoEntry: false });
    if (stat === undefined) return MISSING;
    return `${stat.ino}:${stat.size}:${stat.mtimeNs}:${stat.ctimeNs}`;
  } catch {
    return UNKNOWN;
  }
}

function memoryKey(mapping: Record<string, unknown>): string {
  return Buffer.from(canonicalMapping(mapping)).toString("latin1");
}

/**
 * Keys computed for a mapping object, so that serve (which hands the same object for a
 * secret ID until its file changes) hashes each mapping once per cache file, not per
 * lookup. Mappings are treated as immutable.
 */
interface KeyMemo {
  hmacKey: Uint8Array | undefined;
  fileKey: string | undefined;
  memoryKey: string | undefined;
}

/** Creates the store; call `load()` once at startup (or let `reloadIfChanged` do it). */
export function createCacheStore(options: CacheStoreOptions): CacheStore {
  const { path, backend, logger } = options;
  const now = options.now ?? Date.now;
  let hmacKey: Uint8Array | undefined;
  let entries = new Map<string, Uint8Array>();
  let writtenAt: number | undefined;
  let loadedAt: number | undefined;
  let legacy = false;
  let loaded = false;
  let fileExists = false;
  let lastError: string | undefined;
  // The file state of the last read attempt, good or bad: an unreadable file is retried
  // only once it changes, not on every lookup.
  let signature: string | undefined;
  let reloading: Promise<boolean> | undefined;
  const memory = new Map<string, MemoryEntry>();
  const keys = new WeakMap<object, KeyMemo>();
  const checkIntervalMs = options.checkIntervalMs ?? 1000;
  let watcher: FSWatcher | undefined;
  // True when the file may have changed since the last stat (always true without a watch).
  let dirty = true;
  let lastCheck = Number.NEGATIVE_INFINITY;

  if (options.watch && backend) {
    const name = basename(path);
    try {
      watcher = watch(dirname(path), { persistent: false }, (_event, filename) => {
        if (filename === null || String(filename) === name) dirty = true;
      });
      watcher.on("error", () => {
        watcher?.close();
        watcher = undefined;
        dirty = true;
      });
    } catch {
      // directory missing or inotify exhausted: stat on every call
      watcher = undefined;
    }
  }

  function stats(): CacheStats {
    return {
      path,
      backend: backend !== undefined,
      loaded,
      fileExists,
      fileEntries: entries.size,
      memoryEntries: memory.size,
      writtenAt,
      loadedAt,
      legacy,
      lastError,
    };
  }

  async function read(): Promise<CacheStats> {
    if (!backend) return stats();
    let handle: Awaited<ReturnType<typeof open>> | undefined;
    let bytes: Buffer | undefined;
    try {
      handle = await open(path, "r");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") {
        signature = signatureOf(path);
        lastError = "cache.unreadable";
        throw cacheError(error, path);
      }
    }
    try {
      if (handle) {
        // fstat the descriptor we read, so the signature describes exactly these bytes.
        const stat = await handle.stat({ bigint: true });
        signature = `${stat.ino}:${stat.size}:${stat.mtimeNs}:${stat.ctimeNs}`;
        bytes = await handle.readFile();
      } else {
        signature = MISSING;
      }
    } catch (error) {
      lastError = "cache.unreadable";
      throw cacheError(error, path);
    } finally {
      await handle?.close();
    }
    if (bytes === undefined) {
      entries = new Map();
      hmacKey = undefined;
      writtenAt = undefined;
      legacy = false;
      fileExists = false;
    } else {
      let decoded: Awaited<ReturnType<typeof decodeCacheFile>>;
      try {
        decoded = await decodeCacheFile(bytes, backend, { path });
      } catch (error) {
        const failure = cacheError(error, path);
        lastError = failure.code;
        throw failure;
      }
      entries = decoded.entries;
      hmacKey = decoded.hmacKey;
      writtenAt = decoded.writtenAt;
      legacy = decoded.legacy;
      fileExists = true;
      // A value setup has now written is fresher than one fetched earlier: drop the copy.
      for (const [key, entry] of memory) {
        if (entries.has(cacheKey(hmacKey, entry.mapping))) memory.delete(key);
      }
    }
    loaded = true;
    loadedAt = now();
    lastError = undefined;
    return stats();
  }

  const store: CacheStore = {
    path,
    load: read,
    reloadIfChanged() {
      if (!backend) return Promise.resolve(false);
      if (reloading) return reloading;
      if (watcher !== undefined) {
        const at = now();
        if (!dirty && at - lastCheck < checkIntervalMs) return Promise.resolve(false);
        dirty = false;
        lastCheck = at;
      }
      if (signatureOf(path) === signature) return Promise.resolve(false);
      reloading = read()
        .then((result) => {
          logger.info(`cache reloaded from ${path}: ${result.fileEntries} entries`, {
            event: "cache.reload",
            path,
            entries: result.fileEntries,
            written_at: result.writtenAt,
          });
          return true;
        })
        .catch((error: unknown) => {
          const failure = cacheError(error, path);
          logger.warn(`cache file changed but cannot be read; keeping the previous contents`, {
            event: "cache.reload_failed",
            path,
            code: failure.code,
            error: failure.message,
          });
          return false;
        })
        .finally(() => {
          reloading = undefined;
        });
      return reloading;
    },
    lookup(mapping) {
      let memo = keys.get(mapping);
      if (memo === undefined) {
        memo = { hmacKey: undefined, fileKey: undefined, memoryKey: undefined };
        keys.set(mapping, memo);
      }
      if (hmacKey !== undefined && entries.size > 0) {
        if (memo.hmacKey !== hmacKey || memo.fileKey === undefined) {
          memo.fileKey = cacheKey(hmacKey, mapping);
          memo.hmacKey = hmacKey;
        }
        const value = entries.get(memo.fileKey);
        if (value !== undefined) return { value, source: "file" };
      }
      if (memory.size > 0) {
        memo.memoryKey ??= memoryKey(mapping);
        const entry = memory.get(memo.memoryKey);
        if (entry !== undefined) return { value: entry.value, source: "memory" };
      }
      return undefined;
    },
    get(mapping) {
      return store.lookup(mapping)?.value;
    },
    remember(mapping, value) {
      memory.set(memoryKey(mapping), { mapping, value });
    },
    stats,
    close() {
      watcher?.close();
      watcher = undefined;
    },
  };
  return store;
}
