export { cacheError } from "./errors.js";
export {
  type CacheFileContents,
  type CacheFileOptions,
  type FetchedValue,
  type PreparedCacheSave,
  prepareCacheSave,
  readCacheFile,
  type SaveCacheOptions,
  type SaveCacheResult,
  saveCache,
  writeCacheFile,
} from "./file.js";
export { CACHE_FILE_MAX_BYTES, STALE_TEMP_MS } from "./limits.js";
export { type OpenServeCacheOptions, openServeCache, type ServeCache } from "./serve-cache.js";
export { type CacheFileStatus, readCacheStatus } from "./status.js";
export {
  type CacheHit,
  type CacheSource,
  type CacheStats,
  type CacheStore,
  type CacheStoreOptions,
  createCacheStore,
} from "./store.js";
