import { closeSync, constants, fstatSync, openSync, readSync, type Stats } from "node:fs";
import { type FileHandle, open } from "node:fs/promises";
import { errorMessage, PsiError } from "./errors.js";

// Never follow a symlink in the last component, never wait for a FIFO's writer or a
// device, never make a terminal ours. (libuv adds O_CLOEXEC to every open itself.)
const READ_FLAGS =
  constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY;

/** Options of {@link readRegularFile} and {@link readRegularFileSync}. */
export interface ReadRegularFileOptions {
  /** The most bytes the file may hold; a larger (or growing) file is `fs.too_large`. */
  maxBytes: number;
  /** What the file is, for messages ("mapping of secret x", "cache file"); the path by default. */
  what?: string;
  /** How to fix a file that is not what it should be (the hints name the generic fix otherwise). */
  hint?: string;
}

/** What {@link openRegularFile} returns: an open handle on a regular file and its fstat. */
export interface OpenedRegularFile {
  handle: FileHandle;
  stat: Stats;
  /** Reads the whole file, at most `maxBytes + 1` bytes (more is `fs.too_large`). */
  read(): Promise<Buffer>;
}

function label(path: string, options: { what?: string | undefined }): string {
  return options.what === undefined ? path : `${options.what} (${path})`;
}

function kindOf(stat: Stats): string {
  if (stat.isDirectory()) return "a directory";
  if (stat.isFIFO()) return "a FIFO";
  if (stat.isCharacterDevice()) return "a character device";
  if (stat.isBlockDevice()) return "a block device";
  if (stat.isSocket()) return "a socket";
  return "not a regular file";
}

function openError(error: unknown, path: string, options: { what?: string; hint?: string }) {
  const code = (error as NodeJS.ErrnoException).code;
  const where = label(path, options);
  if (code === "ENOENT" || code === "ENOTDIR") {
    return new PsiError("fs.not_found", `${where} does not exist`, { cause: error });
  }
  if (code === "ELOOP") {
    return new PsiError("fs.symlink", `${where} is a symbolic link; PSI does not follow it`, {
      cause: error,
      hint: options.hint ?? `replace ${path} with a regular file (or remove it)`,
    });
  }
  return new PsiError("fs.unreadable", `cannot read ${where}: ${errorMessage(error)}`, {
    cause: error,
    hint: "check that psi runs as the user owning the file",
  });
}

function checkStat(stat: Stats, path: string, options: ReadRegularFileOptions): void {
  if (!stat.isFile()) {
    throw new PsiError("fs.not_regular", `${label(path, options)} is ${kindOf(stat)}`, {
      hint: options.hint ?? `replace ${path} with a regular file (or remove it)`,
    });
  }
  if (stat.size > options.maxBytes) throw tooLarge(path, options);
}

function tooLarge(path: string, options: ReadRegularFileOptions): PsiError {
  return new PsiError(
    "fs.too_large",
    `${label(path, options)} is larger than ${options.maxBytes} bytes`,
    { hint: options.hint ?? `${path} is not a file PSI wrote; remove it` },
  );
}

/** A full read buffer made larger, up to `maxBytes + 1` (one byte more tells "too large"). */
function grow(buffer: Buffer, path: string, options: ReadRegularFileOptions): Buffer {
  if (buffer.length > options.maxBytes) throw tooLarge(path, options);
  const grown = Buffer.allocUnsafe(Math.min(buffer.length * 2, options.maxBytes + 1));
  buffer.copy(grown);
  return grown;
}

/**
 * Opens `path` for reading only if it is a regular file (no symlink in the last
 * component, no FIFO, device, socket or directory) no larger than `maxBytes`; opening
 * never blocks. Throws PsiError `fs.not_found`, `fs.symlink`, `fs.not_regular`,
 * `fs.too_large` or `fs.unreadable`. The caller closes the handle.
 */
export async function openRegularFile(
  path: string,
  options: ReadRegularFileOptions,
): Promise<OpenedRegularFile> {
  let handle: FileHandle;
  try {
    handle = await open(path, READ_FLAGS);
  } catch (error) {
    throw openError(error, path, options);
  }
  let stat: Stats;
  try {
    stat = await handle.stat();
    checkStat(stat, path, options);
  } catch (error) {
    await handle.close().catch(() => {});
    throw error instanceof PsiError ? error : openError(error, path, options);
  }
  const read = async (): Promise<Buffer> => {
    try {
      let buffer: Buffer = Buffer.allocUnsafe(Math.min(stat.size, options.maxBytes) + 1);
      let length = 0;
      for (;;) {
        if (length === buffer.length) buffer = grow(buffer, path, options);
        const { bytesRead } = await handle.read(buffer, length, buffer.length - length, length);
        if (bytesRead === 0) break;
        length += bytesRead;
      }
      if (length > options.maxBytes) throw tooLarge(path, options);
      return buffer.subarray(0, length);
    } catch (error) {
      throw error instanceof PsiError ? error : openError(error, path, options);
    }
  };
  return { handle, stat, read };
}

/**
 * Reads a whole regular file of at most `maxBytes` (see {@link openRegularFile}); at most
 * `maxBytes + 1` bytes are ever read, so a file that grows or lies about its size cannot
 * fill memory.
 */
export async function readRegularFile(
  path: string,
  options: ReadRegularFileOptions,
): Promise<Buffer> {
  const opened = await openRegularFile(path, options);
  try {
    return await opened.read();
  } finally {
    await opened.handle.close().catch(() => {});
  }
}

/**
 * {@link openRegularFile} without the thread pool: a descriptor on a regular file of at
 * most `maxBytes`, and its fstat. Throws the same errors. The caller closes `fd`.
 */
export function openRegularFileSync(
  path: string,
  options: ReadRegularFileOptions,
): { fd: number; stat: Stats } {
  let fd: number;
  try {
    fd = openSync(path, READ_FLAGS);
  } catch (error) {
    throw openError(error, path, options);
  }
  try {
    const stat = fstatSync(fd);
    checkStat(stat, path, options);
    return { fd, stat };
  } catch (error) {
    closeSync(fd);
    throw error instanceof PsiError ? error : openError(error, path, options);
  }
}

/**
 * {@link readRegularFile} without the thread pool, for small files on the hot path
 * (mapping files are a few hundred bytes: one open, fstat, read, close).
 */
export function readRegularFileSync(path: string, options: ReadRegularFileOptions): Buffer {
  const { fd, stat } = openRegularFileSync(path, options);
  try {
    let buffer: Buffer = Buffer.allocUnsafe(Math.min(stat.size, options.maxBytes) + 1);
    let length = 0;
    for (;;) {
      if (length === buffer.length) buffer = grow(buffer, path, options);
      const bytesRead = readSync(fd, buffer, length, buffer.length - length, length);
      if (bytesRead === 0) break;
      length += bytesRead;
    }
    if (length > options.maxBytes) throw tooLarge(path, options);
    return buffer.subarray(0, length);
  } catch (error) {
    throw error instanceof PsiError ? error : openError(error, path, options);
  } finally {
    closeSync(fd);
  }
}
