import { closeSync, readSync } from "node:fs";
import { errorMessage, isPsiError, openRegularFileSync } from "@psi/core";
import { backendName, HEADER_LENGTH, isEnvelopeError, readHeader } from "@psi/envelope";
import { CACHE_FILE_MAX_BYTES } from "./limits.js";

/** What {@link readCacheStatus} found: file metadata and the header, never the contents. */
export interface CacheFileStatus {
  path: string;
  exists: boolean;
  /** Bytes. */
  size?: number;
  /** Last modification (the last save), milliseconds. */
  mtimeMs?: number;
  /** Permission bits, e.g. 0o600. */
  mode?: number;
  /** Envelope version byte. */
  version?: number;
  /** Backend tag byte and its name (`tpm`, `hsm`, `keyfile`; undefined when unknown). */
  tag?: number;
  backend?: string | undefined;
  /** Why the header could not be read (`cache.bad_magic`, `cache.too_short`, `cache.unreadable`, ...). */
  error?: { code: string; message: string };
}

/**
 * Header and file metadata only (how `psi cache status` answers fast): reads 6 bytes,
 * opens no backend, never throws for a bad or unreadable file (see `error`).
 */
export async function readCacheStatus(path: string): Promise<CacheFileStatus> {
  let fd: number;
  let stat: ReturnType<typeof openRegularFileSync>["stat"];
  try {
    // Never blocks on a FIFO nor follows a symlink: `psi status` must answer whatever is there.
    // Synchronous: an open, an fstat and a 6-byte read, without starting the thread pool.
    ({ fd, stat } = openRegularFileSync(path, {
      maxBytes: CACHE_FILE_MAX_BYTES,
      what: "the cache file",
    }));
  } catch (error) {
    if (isPsiError(error, "fs.not_found")) return { path, exists: false };
    return {
      path,
      exists: true,
      error: {
        code: isPsiError(error) && error.code !== "fs.unreadable" ? error.code : "cache.unreadable",
        message: isPsiError(error) ? error.message : `cannot read ${path}: ${errorMessage(error)}`,
      },
    };
  }
  try {
    const status: CacheFileStatus = {
      path,
      exists: true,
      size: stat.size,
      mtimeMs: stat.mtimeMs,
      mode: stat.mode & 0o7777,
    };
    const head = Buffer.alloc(HEADER_LENGTH);
    const bytesRead = readSync(fd, head, 0, HEADER_LENGTH, 0);
    try {
      const header = readHeader(head.subarray(0, bytesRead), { path });
      status.version = header.version;
      status.tag = header.tag;
      status.backend = backendName(header.tag);
    } catch (error) {
      if (isEnvelopeError(error, "unsupported_version")) {
        status.version = head[4];
        status.tag = head[5];
        status.backend = backendName(head[5] as number);
      }
      status.error = isEnvelopeError(error)
        ? { code: `cache.${error.code}`, message: error.message }
        : { code: "cache.unreadable", message: errorMessage(error) };
    }
    return status;
  } catch (error) {
    return {
      path,
      exists: true,
      error: { code: "cache.unreadable", message: `cannot read ${path}: ${errorMessage(error)}` },
    };
  } finally {
    closeSync(fd);
  }
}
