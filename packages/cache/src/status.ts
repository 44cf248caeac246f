import { open } from "node:fs/promises";
import { errorMessage } from "@psi/core";
import { backendName, HEADER_LENGTH, isEnvelopeError, readHeader } from "@psi/envelope";

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
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(path, "r");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return { path, exists: false };
    return {
      path,
      exists: true,
      error: { code: "cache.unreadable", message: `cannot read ${path}: ${errorMessage(error)}` },
    };
  }
  try {
    const stat = await handle.stat();
    const status: CacheFileStatus = {
      path,
      exists: true,
      size: stat.size,
      mtimeMs: stat.mtimeMs,
      mode: stat.mode & 0o7777,
    };
    const head = Buffer.alloc(HEADER_LENGTH);
    const { bytesRead } = await handle.read(head, 0, HEADER_LENGTH, 0);
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
    await handle.close();
  }
}
