import { type FSWatcher, statSync, watch } from "node:fs";
import { basename, dirname } from "node:path";
import type { Logger } from "@psi/core";
import { errorMessage, isPsiError, openRegularFile, type PsiError } from "@psi/core";
import {
  type CacheCipher,
  cacheKey,
  canonicalMapping,
  type DecodedCache,
  decodeCacheFile,
} from "@psi/envelope";
import { cacheError } from "./errors.js";
import { CACHE_FILE_MAX_BYTES } from "./limits.js";

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
  /**
   * Re-reads the backend's key (keyfile file, tpm credential file) after a file it could
   * not decrypt; resolves true when the key changed, and the file is then decrypted again.
   */
  reloadKey?: (() => Promise<boolean>) | undefined;
  /** A reload still running after this long is abandoned with a warning (default 5000 ms). */
  reloadTimeoutMs?: number;
  /** The largest file read (default {@link CACHE_FILE_MAX_BYTES}). */
  maxBytes?: number;
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
  /**
   * Why the file on disk cannot be decrypted with the key serve holds (after re-reading the
   * key where the backend allows), or undefined; values in memory are still served.
   */
  degraded: string | undefined;
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
   * read; concurrent callers share one reload. Lookups need not wait: they answer from the
   * contents in memory until the reload is done. Never throws: a failed, too slow, missing
   * or older (`written_at`) file is logged and the previous contents stay. Resolves true
   * when new contents were loaded.
   */
  reloadIfChanged(): Promise<boolean>;
  /** {@link reloadIfChanged} even when the file looks unchanged (SIGHUP). */
  reload(): Promise<boolean>;
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
/** How long a reload may take before it is abandoned (a stuck disk, an HSM that hangs). */
const RELOAD_TIMEOUT_MS = 5000;
/** Failures that mean "this key cannot decrypt the file", not "the file is damaged". */
const KEY_ERRORS = new Set(["cache.auth_failed", "cache.tag_mismatch"]);

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
  let degraded: string | undefined;
  const maxBytes = options.maxBytes ?? CACHE_FILE_MAX_BYTES;
  const reloadTimeoutMs = options.reloadTimeoutMs ?? RELOAD_TIMEOUT_MS;
  // Bumped by each reload and by an abandoned one: a late result of an older read is dropped.
  let generation = 0;
  let checkScheduled = false;
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
        if (filename !== null && String(filename) !== name) return;
        dirty = true;
        // Reload now, not at the next lookup: lookups then rarely see a reload in progress,
        // and a file serve cannot decrypt shows in /metrics without waiting for traffic.
        scheduleCheck();
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
      degraded,
    };
  }

  /** Reads and decrypts the file; `undefined` when it does not exist. Records its signature. */
  async function fetchFile(cipher: CacheCipher): Promise<DecodedCache | undefined> {
    let bytes: Buffer;
    try {
      const opened = await openRegularFile(path, { maxBytes, what: "the cache file" });
      try {
        // fstat the descriptor we read, so the signature describes exactly these bytes.
        const stat = await opened.handle.stat({ bigint: true });
        signature = `${stat.ino}:${stat.size}:${stat.mtimeNs}:${stat.ctimeNs}`;
        bytes = await opened.read();
      } finally {
        await opened.handle.close().catch(() => {});
      }
    } catch (error) {
      if (isPsiError(error, "fs.not_found")) {
        signature = MISSING;
        return undefined;
      }
      signature ??= signatureOf(path);
      throw cacheError(error, path);
    }
    try {
      return await decodeCacheFile(bytes, cipher, { path });
    } catch (error) {
      const failure = cacheError(error, path);
      if (failure.code !== "cache.auth_failed" || !options.reloadKey) throw failure;
      // The key may have changed under us (psi cache init --force, a new credential).
      let changed = false;
      try {
        changed = await options.reloadKey();
      } catch (keyError) {
        logger.warn(`cannot re-read the cache key: ${errorMessage(keyError)}`, {
          event: "cache.reload_key",
          path,
          ...(isPsiError(keyError) ? { code: keyError.code } : {}),
        });
      }
      if (!changed) throw failure;
      logger.info("cache key changed on disk: re-read it", { event: "cache.reload_key", path });
      try {
        return await decodeCacheFile(bytes, cipher, { path });
      } catch (again) {
        throw cacheError(again, path);
      }
    }
  }

  /** Records a failed read (`lastError`, `degraded`) and returns it as a PsiError. */
  function failed(error: unknown): PsiError {
    const failure = cacheError(error, path);
    lastError = failure.code;
    degraded = KEY_ERRORS.has(failure.code) ? `${failure.code}: ${failure.message}` : undefined;
    return failure;
  }

  /** Makes `decoded` the contents (or, for a missing file at startup, an empty cache). */
  function apply(decoded: DecodedCache | undefined): void {
    if (decoded === undefined) {
      entries = new Map();
      hmacKey = undefined;
      writtenAt = undefined;
      legacy = false;
      fileExists = false;
    } else {
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
    degraded = undefined;
  }

  async function load(): Promise<CacheStats> {
    if (!backend) return stats();
    signature = undefined;
    let decoded: DecodedCache | undefined;
    try {
      decoded = await fetchFile(backend);
    } catch (error) {
      throw failed(error);
    }
    apply(decoded);
    return stats();
  }

  /**
   * One reload: read, decrypt, check, swap. The contents in memory change only at the
   * end, in one step, so lookups meanwhile see the old contents whole.
   */
  async function reloadNow(): Promise<boolean> {
    if (!backend) return false;
    const attempt = ++generation;
    signature = undefined;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), reloadTimeoutMs);
      timer.unref();
    });
    try {
      const result = await Promise.race([fetchFile(backend), timedOut]);
      if (attempt !== generation) return false;
      if (result === "timeout") {
        // The read goes on in the background; its result is dropped (generation moved on).
        generation++;
        signature ??= signatureOf(path);
        lastError = "cache.reload_timeout";
        logger.warn(
          `reading ${path} took longer than ${reloadTimeoutMs} ms; abandoned, keeping the previous contents (retried when the file changes)`,
          { event: "cache.reload_failed", path, code: "cache.reload_timeout" },
        );
        return false;
      }
      if (result === undefined) {
        degraded = undefined;
        if (!loaded) apply(undefined);
        if (!fileExists) return false;
        // Like a corrupt file: a provider outage is no time to forget every cached value.
        fileExists = false;
        logger[entries.size > 0 ? "warn" : "debug"](
          `${path} disappeared; keeping the ${entries.size} cached values in memory (setup writes it again)`,
          { event: "cache.missing", path, entries: entries.size },
        );
        return false;
      }
      if (writtenAt !== undefined && result.writtenAt < writtenAt) {
        lastError = "cache.rollback";
        degraded = undefined;
        logger.warn(
          `${path} was written at ${result.writtenAt}, before the loaded cache (${writtenAt}); refusing to go back to older values`,
          {
            event: "cache.reload_failed",
            path,
            code: "cache.rollback",
            written_at: result.writtenAt,
            loaded_written_at: writtenAt,
            hint: "to roll back on purpose, restart psi serve (it loads whatever file is there); see docs/security.md",
          },
        );
        return false;
      }
      apply(result);
      logger.info(`cache reloaded from ${path}: ${entries.size} entries`, {
        event: "cache.reload",
        path,
        entries: entries.size,
        written_at: writtenAt,
      });
      return true;
    } catch (error) {
      if (attempt !== generation) return false;
      const failure = failed(error);
      logger.warn(
        degraded === undefined
          ? `cache file changed but cannot be read; keeping the previous contents`
          : "cache.enc on disk cannot be decrypted by the running serve; keeping the previous contents (restart serve)",
        {
          event: "cache.reload_failed",
          path,
          code: failure.code,
          error: failure.message,
          ...(failure.hint === undefined ? {} : { hint: failure.hint }),
          ...(degraded === undefined ? {} : { degraded: true }),
        },
      );
      return false;
    } finally {
      clearTimeout(timer);
    }
  }

  function startReload(): Promise<boolean> {
    reloading = reloadNow().finally(() => {
      reloading = undefined;
      // A change that arrived during this reload: read again (the watch would not repeat it).
      if (dirty && watcher !== undefined) scheduleCheck();
    });
    return reloading;
  }

  function scheduleCheck(): void {
    if (checkScheduled) return;
    checkScheduled = true;
    setImmediate(() => {
      checkScheduled = false;
      if (watcher !== undefined) void store.reloadIfChanged();
    });
  }

  const store: CacheStore = {
    path,
    load,
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
      return startReload();
    },
    async reload() {
      if (!backend) return false;
      if (reloading) await reloading;
      return startReload();
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
