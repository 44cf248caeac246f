import type { CacheBackend, CacheConfig, Logger } from "@psi/core";
import { errorMessage, isPsiError } from "@psi/core";
import { formatTag } from "@psi/envelope";
import { type CacheStore, createCacheStore } from "./store.js";

/** Options of {@link openServeCache}. */
export interface OpenServeCacheOptions {
  /** The configuration's `cache` block (undefined: no block, the cache is off). */
  settings: CacheConfig | undefined;
  /** The cache file (`cachePath(loaded)` of @psi/core). */
  path: string;
  logger: Logger;
  /** Opens the configured backend (undefined when there is none). */
  openBackend: () => Promise<CacheBackend | undefined>;
}

/** What serve opened for its cache: the store (memory-only without a backend) and the backend. */
export interface ServeCache {
  cache: CacheStore | undefined;
  backend: CacheBackend | undefined;
}

/**
 * Opens the cache the way serve needs it (SPEC §4.4, §6.5): every failure is a warning
 * and lookups go live — a missing key never takes the host down. Off (`cache.enabled:
 * false`, or no cache block) → no cache at all; enabled without a backend, or a backend
 * that fails → a memory-only store (values fetched live are still kept).
 */
export async function openServeCache(options: OpenServeCacheOptions): Promise<ServeCache> {
  const { settings, path, logger } = options;
  if (settings === undefined || !settings.enabled) {
    logger.info("cache is off: every lookup goes to its provider", {
      event: "cache.open",
      enabled: false,
    });
    return { cache: undefined, backend: undefined };
  }
  const memoryOnly = (): ServeCache => ({
    cache: createCacheStore({ path, logger }),
    backend: undefined,
  });
  if (settings.backend === undefined) {
    logger.warn(
      "cache.enabled is true but cache.backend is not set: container starts hit the live providers " +
        "(set cache.backend to tpm, hsm or keyfile and run psi cache init)",
      { event: "cache.open", path },
    );
    return memoryOnly();
  }
  let backend: CacheBackend | undefined;
  try {
    backend = await options.openBackend();
  } catch (error) {
    logger.warn(
      `cache backend ${settings.backend} failed to open: container starts hit the live providers`,
      {
        event: "cache.open",
        backend: settings.backend,
        error: errorMessage(error),
        ...(isPsiError(error) && error.hint ? { hint: error.hint } : {}),
      },
    );
    return memoryOnly();
  }
  if (backend === undefined) return memoryOnly();
  // inotify tells the store when setup replaced the file; a stat per second is the safety net.
  // After a key change (psi cache init --force, then setup) the store re-reads the key
  // where the backend can (keyfile, tpm credential file) before calling itself degraded.
  const reloadKey = backend.reloadKey?.bind(backend);
  const cache = createCacheStore({ path, backend, logger, watch: true, reloadKey });
  try {
    const stats = await cache.load();
    logger.info(
      stats.fileExists
        ? `cache loaded from ${path}: ${stats.fileEntries} entries`
        : `no cache file at ${path} yet (setup writes it): lookups go live until then`,
      {
        event: "cache.load",
        path,
        backend: settings.backend,
        entries: stats.fileEntries,
        ...(stats.writtenAt === undefined ? {} : { written_at: stats.writtenAt }),
        ...(stats.legacy ? { legacy: true } : {}),
      },
    );
  } catch (error) {
    const fields: Record<string, unknown> = {
      event: "cache.load",
      path,
      backend: settings.backend,
      error: errorMessage(error),
    };
    if (isPsiError(error)) {
      fields["code"] = error.code;
      if (error.hint) fields["hint"] = error.hint;
    }
    const what = isPsiError(error, "cache.tag_mismatch")
      ? `cache file ${path} was written by another backend (configured: ${settings.backend}, tag ${formatTag(backend.tag)})`
      : `cannot read the cache ${path}`;
    // The store keeps watching the file: the next setup's rewrite is picked up.
    logger.warn(`${what}; lookups go to the providers until setup rewrites it`, fields);
  }
  return { cache, backend };
}
