import { randomBytes as nodeRandomBytes } from "node:crypto";
import { base64DecodedLength, base64Length, readBase64, writeBase64 } from "./base64.js";
import type { RandomOptions } from "./cipher.js";
import { EnvelopeError } from "./errors.js";
import { hexKeyOrder } from "./key-order.js";
import { pythonJsonString, sortByCodePoint } from "./python-json.js";

/** Payload version this package writes; version 1 files load as an empty cache. */
export const PAYLOAD_VERSION = 2;
/** HMAC key length in bytes. */
export const HMAC_KEY_LENGTH = 32;

/** The decrypted contents of a cache file: cache key (hex HMAC) → secret value. */
export interface CacheContents {
  hmacKey: Uint8Array;
  entries: Map<string, Uint8Array>;
  /** Unix seconds; now when omitted. */
  writtenAt?: number;
}

/** What {@link decodePayload} returns; `legacy` marks a version 1 file read as empty. */
export interface DecodedCache {
  hmacKey: Uint8Array;
  entries: Map<string, Uint8Array>;
  writtenAt: number;
  legacy: boolean;
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const REWRITE_HINT = "re-run `psi setup` to rewrite the cache";

function toBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64");
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const ENTRIES_HEAD = '{"entries":{';

/**
 * The payload JSON (SPEC §6.2) exactly as the reference writes it:
 * `{"entries":{...},"hmac_key":"<b64>","version":2,"written_at":<int>}`, keys sorted, no spaces.
 */
export function encodePayload(cache: CacheContents): Uint8Array {
  if (cache.hmacKey.length !== HMAC_KEY_LENGTH) {
    throw new RangeError(`hmac key must be ${HMAC_KEY_LENGTH} bytes, got ${cache.hmacKey.length}`);
  }
  const writtenAt = cache.writtenAt ?? Math.floor(Date.now() / 1000);
  if (!Number.isSafeInteger(writtenAt)) {
    throw new RangeError(`writtenAt must be an integer number of seconds, got ${writtenAt}`);
  }
  const tail =
    '},"hmac_key":"' +
    toBase64(cache.hmacKey) +
    '","version":' +
    PAYLOAD_VERSION +
    ',"written_at":' +
    writtenAt +
    "}";
  return encodeHexKeyed(cache.entries, tail) ?? encodeAnyKeys(cache.entries, tail);
}

/**
 * The encoder for what PSI writes: keys that start with lowercase hex and need no JSON
 * escape; undefined for other keys. Each `"key":"base64"` is first written in the map's
 * order (memory order: reading keys and values in sorted order misses the CPU cache on
 * every entry at 100,000 entries), then the fragments are copied in hex-prefix radix
 * order into one buffer of the exact size. The staging copy is wiped; the caller wipes
 * the result after encrypting.
 */
export function encodeHexKeyed(entries: Map<string, Uint8Array>, tail: string): Buffer | undefined {
  const n = entries.size;
  const keys: string[] = new Array(n);
  const values: Uint8Array[] = new Array(n);
  // fragment i is staging[starts[i], starts[i + 1])
  const starts = new Uint32Array(n + 1);
  let i = 0;
  let length = 0;
  for (const [key, value] of entries) {
    keys[i] = key;
    values[i] = value;
    length += key.length + base64Length(value.length) + 5;
    starts[++i] = length;
  }
  const order = hexKeyOrder(keys);
  if (order === undefined) return undefined;
  const staging = Buffer.allocUnsafe(length);
  let o = 0;
  for (i = 0; i < n; i++) {
    const key = keys[i] as string;
    staging[o++] = QUOTE;
    for (let j = 0; j < key.length; j++) {
      const code = key.charCodeAt(j);
      if (code < 0x20 || code > 0x7e || code === QUOTE || code === BACKSLASH) {
        // needs an escape: the general encoder writes it
        staging.fill(0, 0, o);
        return undefined;
      }
      staging[o++] = code;
    }
    staging[o++] = QUOTE;
    staging[o++] = 0x3a;
    staging[o++] = QUOTE;
    o = writeBase64(values[i] as Uint8Array, staging, o);
    staging[o++] = QUOTE;
  }
  // the entries, a comma between two, the tail
  const size = ENTRIES_HEAD.length + length + Math.max(n - 1, 0) + tail.length;
  const out = Buffer.allocUnsafe(size);
  o = out.write(ENTRIES_HEAD, 0, "latin1");
  for (let k = 0; k < n; k++) {
    const index = order[k] as number;
    if (k > 0) out[o++] = 0x2c;
    o += staging.copy(out, o, starts[index] as number, starts[index + 1] as number);
  }
  staging.fill(0);
  o += out.write(tail, o, "latin1");
  if (o !== size) {
    out.fill(0);
    throw new Error(`payload encoder wrote ${o} bytes, expected ${size}`);
  }
  return out;
}

/** The general encoder: any keys, escaped and ordered as Python's json.dumps does. */
function encodeAnyKeys(entries: Map<string, Uint8Array>, tail: string): Uint8Array {
  const keys = sortByCodePoint([...entries.keys()]);
  const parts: string[] = new Array(keys.length);
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i] as string;
    parts[i] = pythonJsonString(key) + ':"' + toBase64(entries.get(key) as Uint8Array) + '"';
  }
  // ensure_ascii output: every character is one byte.
  return Buffer.from(ENTRIES_HEAD + parts.join(",") + tail, "latin1");
}

function badShape(what: string): EnvelopeError {
  return new EnvelopeError("bad_payload", `payload has the wrong shape: ${what}`, {
    hint: REWRITE_HINT,
  });
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

const HMAC_KEY_HEAD = Buffer.from(',"hmac_key":"', "latin1");
const VERSION_HEAD = Buffer.from(`","version":${PAYLOAD_VERSION},"written_at":`, "latin1");
const ENTRIES_HEAD_BYTES = Buffer.from(ENTRIES_HEAD, "latin1");

function startsAt(bytes: Uint8Array, at: number, expected: Uint8Array): boolean {
  if (at + expected.length > bytes.length) return false;
  for (let i = 0; i < expected.length; i++) if (bytes[at + i] !== expected[i]) return false;
  return true;
}

/**
 * The reader for the exact bytes {@link encodePayload} (and the reference) write: keys
 * without escapes, padded base64 values, version 2, an integer `written_at`. It builds the
 * map straight from the bytes, with every value a view into one buffer, instead of a
 * parsed object of strings; what JSON.parse would read differently (escapes, spaces,
 * another key order, anything wrong) returns undefined, for the general reader.
 */
export function decodeCanonical(bytes: Buffer): DecodedCache | undefined {
  if (!startsAt(bytes, 0, ENTRIES_HEAD_BYTES)) return undefined;
  const end = bytes.length;
  // [key start, key end, value start, value end] per entry
  const spans: number[] = [];
  let valueBytes = 0;
  let at = ENTRIES_HEAD_BYTES.length;
  if (bytes[at] === 0x7d) at++;
  else {
    for (;;) {
      if (bytes[at] !== QUOTE) return undefined;
      const keyStart = ++at;
      for (let code = bytes[at]; code !== QUOTE; code = bytes[++at]) {
        if (code === undefined || code < 0x20 || code > 0x7e || code === BACKSLASH)
          return undefined;
      }
      const keyEnd = at;
      if (bytes[at + 1] !== 0x3a || bytes[at + 2] !== QUOTE) return undefined;
      const valueStart = at + 3;
      at = bytes.indexOf(QUOTE, valueStart);
      if (at < 0) return undefined;
      const length = base64DecodedLength(bytes, valueStart, at);
      if (length < 0) return undefined;
      valueBytes += length;
      spans.push(keyStart, keyEnd, valueStart, at);
      const next = bytes[at + 1];
      at += 2;
      if (next === 0x7d) break;
      if (next !== 0x2c) return undefined;
    }
  }
  if (!startsAt(bytes, at, HMAC_KEY_HEAD)) return undefined;
  const keyStart = at + HMAC_KEY_HEAD.length;
  at = bytes.indexOf(QUOTE, keyStart);
  if (at < 0 || base64DecodedLength(bytes, keyStart, at) !== HMAC_KEY_LENGTH) return undefined;
  const hmacKey = Buffer.alloc(HMAC_KEY_LENGTH);
  readBase64(bytes, keyStart, at, hmacKey, 0);
  if (!startsAt(bytes, at, VERSION_HEAD)) return undefined;
  at += VERSION_HEAD.length;
  // JSON integers: no leading zero, no sign; 15 digits keep every value exact.
  const digits = end - 1 - at;
  if (digits < 1 || digits > 15 || bytes[end - 1] !== 0x7d) return undefined;
  if (bytes[at] === 0x30 && digits > 1) return undefined;
  for (let i = at; i < end - 1; i++) {
    const code = bytes[i] as number;
    if (code < 0x30 || code > 0x39) return undefined;
  }
  const writtenAt = Number(bytes.toString("latin1", at, end - 1));
  const store = Buffer.allocUnsafe(valueBytes);
  const entries = new Map<string, Uint8Array>();
  let offset = 0;
  for (let i = 0; i < spans.length; i += 4) {
    const start = offset;
    offset = readBase64(bytes, spans[i + 2] as number, spans[i + 3] as number, store, offset);
    entries.set(
      bytes.toString("latin1", spans[i] as number, spans[i + 1] as number),
      Buffer.from(store.buffer, store.byteOffset + start, offset - start),
    );
  }
  return { hmacKey, entries, writtenAt, legacy: false };
}

/** Parses decrypted payload bytes; version 1 gives an empty cache with a new HMAC key. */
export function decodePayload(plaintext: Uint8Array, options: RandomOptions = {}): DecodedCache {
  const canonical = decodeCanonical(
    Buffer.from(plaintext.buffer, plaintext.byteOffset, plaintext.byteLength),
  );
  if (canonical !== undefined) return canonical;
  let data: unknown;
  try {
    data = JSON.parse(utf8.decode(plaintext));
  } catch (error) {
    throw new EnvelopeError("bad_payload", "payload is not UTF-8 JSON", {
      cause: error,
      hint: REWRITE_HINT,
    });
  }
  if (!isObject(data)) throw badShape("not a JSON object");
  const version = data["version"];
  if (typeof version !== "number") throw badShape('"version" is missing or not a number');
  const writtenAt = data["written_at"];
  if (version === 1) {
    // Version 1 was keyed by Podman hex IDs, which no longer identify a secret: start empty.
    return {
      hmacKey: Buffer.from((options.randomBytes ?? nodeRandomBytes)(HMAC_KEY_LENGTH)),
      entries: new Map(),
      writtenAt: typeof writtenAt === "number" && Number.isFinite(writtenAt) ? writtenAt : 0,
      legacy: true,
    };
  }
  if (version !== PAYLOAD_VERSION) {
    throw new EnvelopeError(
      "bad_payload",
      `payload version ${version} is not supported (this PSI reads versions 1 and ${PAYLOAD_VERSION})`,
      { hint: "the file was written by another PSI release; upgrade PSI or " + REWRITE_HINT },
    );
  }
  const hmacKey = data["hmac_key"];
  if (typeof hmacKey !== "string" || !BASE64.test(hmacKey))
    throw badShape('"hmac_key" is not base64');
  const hmacKeyBytes = Buffer.from(hmacKey, "base64");
  if (hmacKeyBytes.length !== HMAC_KEY_LENGTH) {
    throw badShape(`"hmac_key" is ${hmacKeyBytes.length} bytes, expected ${HMAC_KEY_LENGTH}`);
  }
  if (typeof writtenAt !== "number" || !Number.isFinite(writtenAt)) {
    throw badShape('"written_at" is missing or not a number');
  }
  const rawEntries = data["entries"];
  if (!isObject(rawEntries)) throw badShape('"entries" is not an object');
  const entries = new Map<string, Uint8Array>();
  for (const key of Object.keys(rawEntries)) {
    const value = rawEntries[key];
    if (typeof value !== "string" || !BASE64.test(value)) {
      throw badShape(`entry ${JSON.stringify(key)} is not a base64 string`);
    }
    entries.set(key, Buffer.from(value, "base64"));
  }
  return { hmacKey: hmacKeyBytes, entries, writtenAt, legacy: false };
}
