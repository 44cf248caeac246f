import { compareCodePoints } from "./python-json.js";

/** Lowercase hex digit → its value, -1 for anything else; '0'..'9' < 'a'..'f' as in ASCII. */
const NIBBLE = new Int8Array(128).fill(-1);
for (let i = 0; i < 16; i++) NIBBLE["0123456789abcdef".charCodeAt(i)] = i;

const PREFIX_DIGITS = 8;
const RADIX_BITS = 11;
const BUCKETS = 1 << RADIX_BITS;

/**
 * The indices of `keys` in code point order when every key starts with 8 lowercase hex
 * digits (cache keys are hex HMACs), else undefined. A radix sort of the 32-bit prefixes
 * replaces a comparison sort of 64-character strings, which costs more than the rest of
 * the payload encoding at 100,000 entries; keys sharing a prefix are then ordered by full
 * comparison.
 */
export function hexKeyOrder(keys: readonly string[]): Uint32Array | undefined {
  const n = keys.length;
  let prefix = new Uint32Array(n);
  let order = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    const key = keys[i] as string;
    if (key.length < PREFIX_DIGITS) return undefined;
    let value = 0;
    for (let j = 0; j < PREFIX_DIGITS; j++) {
      const code = key.charCodeAt(j);
      const digit = code < 128 ? (NIBBLE[code] as number) : -1;
      if (digit < 0) return undefined;
      value = (value << 4) | digit;
    }
    prefix[i] = value >>> 0;
    order[i] = i;
  }
  // Least significant digit first; each pass is stable, so equal prefixes keep index order.
  let nextPrefix = new Uint32Array(n);
  let nextOrder = new Uint32Array(n);
  const count = new Uint32Array(BUCKETS);
  for (let shift = 0; shift < 32; shift += RADIX_BITS) {
    count.fill(0);
    for (let i = 0; i < n; i++) {
      const bucket = ((prefix[i] as number) >>> shift) & (BUCKETS - 1);
      count[bucket] = (count[bucket] as number) + 1;
    }
    let sum = 0;
    for (let b = 0; b < BUCKETS; b++) {
      const c = count[b] as number;
      count[b] = sum;
      sum += c;
    }
    for (let i = 0; i < n; i++) {
      const p = prefix[i] as number;
      const bucket = (p >>> shift) & (BUCKETS - 1);
      const at = count[bucket] as number;
      count[bucket] = at + 1;
      nextPrefix[at] = p;
      nextOrder[at] = order[i] as number;
    }
    [prefix, nextPrefix] = [nextPrefix, prefix];
    [order, nextOrder] = [nextOrder, order];
  }
  for (let i = 0; i < n - 1; ) {
    let j = i + 1;
    while (j < n && prefix[j] === prefix[i]) j++;
    if (j - i > 1) {
      const run = Array.from(order.subarray(i, j)).sort((a, b) =>
        compareCodePoints(keys[a] as string, keys[b] as string),
      );
      order.set(run, i);
    }
    i = j;
  }
  return order;
}
