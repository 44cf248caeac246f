/**
 * The largest cache file PSI reads: 256 MiB, about a million typical entries (100,000
 * entries take about 20 MB). A bigger file was not written by setup and is refused
 * (`fs.too_large`) before it can fill serve's memory.
 */
export const CACHE_FILE_MAX_BYTES = 256 * 1024 * 1024;

/**
 * Temp files of cache writers older than this are swept on every save: a save takes
 * seconds at most, so an older one belongs to a writer that was killed.
 */
export const STALE_TEMP_MS = 5 * 60 * 1000;
