import type { CacheCipher, RandomOptions } from "./cipher.js";
import { atPath, EnvelopeError } from "./errors.js";
import { backendName, formatTag, HEADER_LENGTH, readHeader, writeHeader } from "./header.js";
import { type CacheContents, type DecodedCache, decodePayload, encodePayload } from "./payload.js";

/** Options of {@link decodeCacheFile}: the file's path for messages, a random source for tests. */
export interface DecodeOptions extends RandomOptions {
  path?: string;
}

function describeTag(tag: number): string {
  const name = backendName(tag);
  return name === undefined
    ? `an unknown backend (tag ${formatTag(tag)})`
    : `the ${name} backend (tag ${formatTag(tag)})`;
}

function tagMismatch(fileTag: number, cipherTag: number, path: string | undefined): EnvelopeError {
  const where = path ?? "cache file";
  const configured = backendName(cipherTag) ?? formatTag(cipherTag);
  const fileBackend = backendName(fileTag);
  const fix =
    `re-run \`psi cache init --backend ${configured}\` (then \`psi setup\`) for the configured backend` +
    (fileBackend === undefined ? "" : `, or set cache.backend: ${fileBackend} to match the file`);
  return new EnvelopeError(
    "tag_mismatch",
    `${where} was written by ${describeTag(fileTag)} but the configured backend is ${describeTag(cipherTag)}; ${fix}`,
    { hint: fix, ...(path === undefined ? {} : { path }) },
  );
}

/** A whole cache file: PSIC header with the cipher's tag, then the encrypted payload JSON. */
export async function encodeCacheFile(
  cache: CacheContents,
  cipher: CacheCipher,
): Promise<Uint8Array> {
  const plaintext = encodePayload(cache);
  try {
    return writeHeader(cipher.tag, await cipher.encrypt(plaintext));
  } finally {
    plaintext.fill(0);
  }
}

/**
 * Reads a whole cache file with `cipher`. Throws EnvelopeError (naming `options.path`) for
 * every way the file can be wrong; a version 1 payload loads empty with `legacy: true`.
 */
export async function decodeCacheFile(
  file: Uint8Array,
  cipher: CacheCipher,
  options: DecodeOptions = {},
): Promise<DecodedCache> {
  const { tag } = readHeader(file, options);
  if (tag !== cipher.tag) throw tagMismatch(tag, cipher.tag, options.path);
  let plaintext: Uint8Array;
  try {
    plaintext = await cipher.decrypt(file.subarray(HEADER_LENGTH));
  } catch (error) {
    throw error instanceof EnvelopeError ? atPath(error, options.path) : error;
  }
  try {
    return decodePayload(plaintext, options);
  } catch (error) {
    throw error instanceof EnvelopeError ? atPath(error, options.path) : error;
  } finally {
    plaintext.fill(0);
  }
}
