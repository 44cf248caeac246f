import { createHmac } from "node:crypto";
import { canonicalMapping } from "./canonical.js";

/** The cache entry key of a mapping: `hex(HMAC-SHA256(hmacKey, canonicalMapping(mapping)))`. */
export function cacheKey(hmacKey: Uint8Array, mapping: Record<string, unknown>): string {
  return createHmac("sha256", hmacKey).update(canonicalMapping(mapping)).digest("hex");
}
