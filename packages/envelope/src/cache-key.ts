import { hash } from "node:crypto";
import { canonicalMappingText } from "./canonical.js";

const SHA256_BLOCK = 64;
const SHA256_LENGTH = 32;

/**
 * HMAC-SHA256 over canonical mapping bytes, with the padded keys computed once. It is the
 * RFC 2104 construction on one-shot `crypto.hash`, several times faster than a
 * `createHmac` per mapping (setup keys thousands of mappings per save); tests check it
 * against createHmac.
 */
export function cacheKeyer(hmacKey: Uint8Array): (mapping: Record<string, unknown>) => string {
  const key = hmacKey.length > SHA256_BLOCK ? hash("sha256", hmacKey, "buffer") : hmacKey;
  const inner = Buffer.alloc(SHA256_BLOCK, 0x36);
  const outer = Buffer.alloc(SHA256_BLOCK + SHA256_LENGTH, 0x5c);
  for (let i = 0; i < key.length; i++) {
    inner[i] = (inner[i] as number) ^ (key[i] as number);
    outer[i] = (outer[i] as number) ^ (key[i] as number);
  }
  // Canonical text is pure ASCII, so the inner pad joins it as latin1 in one allocation.
  const innerText = inner.toString("latin1");
  return (mapping) => {
    const innerDigest = hash(
      "sha256",
      Buffer.from(innerText + canonicalMappingText(mapping), "latin1"),
      "buffer",
    );
    // The outer block is reused: the call is synchronous and the digest fills its tail.
    outer.set(innerDigest, SHA256_BLOCK);
    return hash("sha256", outer, "hex");
  };
}

/** The cache entry key of a mapping: `hex(HMAC-SHA256(hmacKey, canonicalMapping(mapping)))`. */
export function cacheKey(hmacKey: Uint8Array, mapping: Record<string, unknown>): string {
  return cacheKeyer(hmacKey)(mapping);
}
