// Standard base64 (RFC 4648 §4, padded) between byte arrays, for the payload codec: it
// writes and reads values in place in the payload bytes, so no base64 string of a secret
// is ever made (strings cannot be wiped), and no per-value Buffer or string is allocated.

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const EQUALS = 0x3d;
const ENCODE = Uint8Array.from(ALPHABET, (char) => char.charCodeAt(0));
/** Byte → 6-bit value, -1 for anything outside the alphabet (`=` included). */
const DECODE = new Int8Array(256).fill(-1);
for (let i = 0; i < ENCODE.length; i++) DECODE[ENCODE[i] as number] = i;

/** How many characters base64 of `length` bytes takes, padding included. */
export function base64Length(length: number): number {
  return Math.ceil(length / 3) * 4;
}

/** Writes padded base64 of `bytes` into `out` at `offset`; returns the offset after it. */
export function writeBase64(bytes: Uint8Array, out: Uint8Array, offset: number): number {
  const length = bytes.length;
  const whole = length - (length % 3);
  let o = offset;
  for (let i = 0; i < whole; i += 3) {
    const v =
      ((bytes[i] as number) << 16) | ((bytes[i + 1] as number) << 8) | (bytes[i + 2] as number);
    out[o] = ENCODE[v >>> 18] as number;
    out[o + 1] = ENCODE[(v >>> 12) & 63] as number;
    out[o + 2] = ENCODE[(v >>> 6) & 63] as number;
    out[o + 3] = ENCODE[v & 63] as number;
    o += 4;
  }
  if (whole < length) {
    const two = whole + 1 < length;
    const v = ((bytes[whole] as number) << 16) | (two ? (bytes[whole + 1] as number) << 8 : 0);
    out[o] = ENCODE[v >>> 18] as number;
    out[o + 1] = ENCODE[(v >>> 12) & 63] as number;
    out[o + 2] = two ? (ENCODE[(v >>> 6) & 63] as number) : EQUALS;
    out[o + 3] = EQUALS;
    o += 4;
  }
  return o;
}

/**
 * The decoded length of the base64 text `text[start, end)`, or -1 unless it is padded
 * base64 as the payload reader has always accepted it (`^(?:[A-Za-z0-9+/]{4})*
 * (?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$`): whole groups of four, at most two `=`,
 * only at the end.
 */
export function base64DecodedLength(text: Uint8Array, start: number, end: number): number {
  const length = end - start;
  if (length % 4 !== 0) return -1;
  let padding = 0;
  if (length > 0 && text[end - 1] === EQUALS) padding = text[end - 2] === EQUALS ? 2 : 1;
  for (let i = start; i < end - padding; i++) {
    if ((DECODE[text[i] as number] as number) < 0) return -1;
  }
  return (length / 4) * 3 - padding;
}

/**
 * Decodes the base64 text `text[start, end)`, already checked by
 * {@link base64DecodedLength}, into `out` at `offset`; returns the offset after it.
 * Like Node's and Python's decoders, unused bits of the last character are ignored.
 */
export function readBase64(
  text: Uint8Array,
  start: number,
  end: number,
  out: Uint8Array,
  offset: number,
): number {
  let o = offset;
  // The groups before a padded last group (decoded after the loop).
  const e = end > start && text[end - 1] === EQUALS ? end - 4 : end;
  for (let i = start; i < e; i += 4) {
    const v =
      ((DECODE[text[i] as number] as number) << 18) |
      ((DECODE[text[i + 1] as number] as number) << 12) |
      ((DECODE[text[i + 2] as number] as number) << 6) |
      (DECODE[text[i + 3] as number] as number);
    out[o] = v >>> 16;
    out[o + 1] = (v >>> 8) & 0xff;
    out[o + 2] = v & 0xff;
    o += 3;
  }
  if (e < end) {
    const v =
      ((DECODE[text[e] as number] as number) << 18) |
      ((DECODE[text[e + 1] as number] as number) << 12);
    out[o++] = v >>> 16;
    if (text[e + 2] !== EQUALS) {
      const w = v | ((DECODE[text[e + 2] as number] as number) << 6);
      out[o++] = (w >>> 8) & 0xff;
    }
  }
  return o;
}
