import { randomBytes as nodeRandomBytes } from "node:crypto";
import type { RandomOptions } from "./cipher.js";
import { EnvelopeError } from "./errors.js";
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
  const keys = sortByCodePoint([...cache.entries.keys()]);
  const parts: string[] = new Array(keys.length);
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i] as string;
    parts[i] = pythonJsonString(key) + ':"' + toBase64(cache.entries.get(key) as Uint8Array) + '"';
  }
  const json =
    '{"entries":{' +
    parts.join(",") +
    '},"hmac_key":"' +
    toBase64(cache.hmacKey) +
    '","version":' +
    PAYLOAD_VERSION +
    ',"written_at":' +
    writtenAt +
    "}";
  // ensure_ascii output: every character is one byte.
  return Buffer.from(json, "latin1");
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

/** Parses decrypted payload bytes; version 1 gives an empty cache with a new HMAC key. */
export function decodePayload(plaintext: Uint8Array, options: RandomOptions = {}): DecodedCache {
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
