/** Options of {@link pythonJsonDumps}, named after Python's `json.dumps` arguments. */
export interface PythonJsonOptions {
  /** Sort object keys by code point, at every depth (`sort_keys`). Default false. */
  sortKeys?: boolean;
  /** `[item, key]` separators. Default Python's `[", ", ": "]`. */
  separators?: [string, string];
  /** Escape everything outside printable ASCII as `\uXXXX` (`ensure_ascii`). Default true. */
  ensureAscii?: boolean;
}

// Python's json.encoder ESCAPE_ASCII / ESCAPE patterns.
const NEEDS_ESCAPE_ASCII = /[^\x20-\x7e]|["\\]/;
const ESCAPE_ASCII = /[^\x20-\x7e]|["\\]/g;
const NEEDS_ESCAPE = /[\x00-\x1f"\\]/;
const ESCAPE = /[\x00-\x1f"\\]/g;

const SHORT_ESCAPES: Record<string, string> = {
  '"': '\\"',
  "\\": "\\\\",
  "\n": "\\n",
  "\r": "\\r",
  "\t": "\\t",
  "\b": "\\b",
  "\f": "\\f",
};

function escapeChar(char: string): string {
  const short = SHORT_ESCAPES[char];
  if (short !== undefined) return short;
  // A UTF-16 code unit; astral characters arrive as their two surrogates, as Python writes them.
  return "\\u" + char.charCodeAt(0).toString(16).padStart(4, "0");
}

/** A JSON string literal exactly as Python's encoder writes it. */
export function pythonJsonString(value: string, ensureAscii = true): string {
  if (ensureAscii) {
    if (!NEEDS_ESCAPE_ASCII.test(value)) return '"' + value + '"';
    return '"' + value.replace(ESCAPE_ASCII, escapeChar) + '"';
  }
  if (!NEEDS_ESCAPE.test(value)) return '"' + value + '"';
  return '"' + value.replace(ESCAPE, escapeChar) + '"';
}

function isSurrogate(unit: number): boolean {
  return unit >= 0xd800 && unit <= 0xdfff;
}

function isHighSurrogate(unit: number): boolean {
  return unit >= 0xd800 && unit <= 0xdbff;
}

/**
 * Orders strings by Unicode code point, as Python sorts `str`. JS's default sort compares
 * UTF-16 units, which puts astral characters (surrogates) before U+E000..U+FFFF.
 */
export function compareCodePoints(a: string, b: string): number {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a.charCodeAt(i) === b.charCodeAt(i)) i++;
  if (i === n) return a.length - b.length;
  const ua = a.charCodeAt(i);
  const ub = b.charCodeAt(i);
  if (!isSurrogate(ua) && !isSurrogate(ub)) return ua - ub;
  // The shared prefix may end in a high surrogate that pairs differently in a and b.
  if (i > 0 && isHighSurrogate(a.charCodeAt(i - 1))) {
    const pa = a.codePointAt(i - 1) as number;
    const pb = b.codePointAt(i - 1) as number;
    if (pa !== pb) return pa - pb;
  }
  return (a.codePointAt(i) as number) - (b.codePointAt(i) as number);
}

/** Sorts `keys` in place by code point (UTF-16 order is the same when no key has a surrogate). */
export function sortByCodePoint(keys: string[]): string[] {
  for (const key of keys) {
    for (let i = 0; i < key.length; i++) {
      if (isSurrogate(key.charCodeAt(i))) return keys.sort(compareCodePoints);
    }
  }
  return keys.sort();
}

/**
 * Python's `float.__repr__`: shortest round-trip digits, fixed notation when the decimal
 * exponent is in [-4, 16), else `d.ddde+XX`; integral values keep ".0".
 */
export function pythonFloatRepr(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Number.POSITIVE_INFINITY) return "Infinity";
  if (value === Number.NEGATIVE_INFINITY) return "-Infinity";
  if (value === 0) return Object.is(value, -0) ? "-0.0" : "0.0";
  const sign = value < 0 ? "-" : "";
  // toExponential() without digits gives the shortest round-trip digits, like Python's repr.
  const [mantissa, exponentText] = Math.abs(value).toExponential().split("e") as [string, string];
  const digits = mantissa.replace(".", "");
  const exponent = Number(exponentText);
  const point = exponent + 1; // digits are 0.DIGITS × 10^point
  if (point <= -4 || point > 16) {
    const head = digits.length === 1 ? digits : digits[0] + "." + digits.slice(1);
    const expSign = exponent < 0 ? "-" : "+";
    return sign + head + "e" + expSign + String(Math.abs(exponent)).padStart(2, "0");
  }
  if (point <= 0) return sign + "0." + "0".repeat(-point) + digits;
  if (point < digits.length) return sign + digits.slice(0, point) + "." + digits.slice(point);
  return sign + digits + "0".repeat(point - digits.length) + ".0";
}

/**
 * A JS number as Python would print it after reading JS's JSON for it: integral values
 * below 1e21 (which JSON.stringify writes without exponent) are ints, the rest floats.
 */
function pythonNumber(value: number): string {
  if (Number.isInteger(value) && Math.abs(value) < 1e21) return String(value);
  return pythonFloatRepr(value);
}

function typeName(value: unknown): string {
  if (value === undefined) return "undefined";
  if (typeof value !== "object" || value === null) return typeof value;
  return (value as object).constructor?.name ?? "object";
}

function isPlainObject(value: object): value is Record<string, unknown> {
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/**
 * Serializes `value` exactly as Python's `json.dumps(value, ...)` does for the same data
 * (default: `separators=(", ", ": ")`, `ensure_ascii=True`, insertion order). Accepts
 * plain objects, arrays, strings, numbers, bigints, booleans and null.
 */
export function pythonJsonDumps(value: unknown, options: PythonJsonOptions = {}): string {
  const [itemSeparator, keySeparator] = options.separators ?? [", ", ": "];
  const sort = options.sortKeys ?? false;
  const ascii = options.ensureAscii ?? true;
  const parts: string[] = [];
  const stack = new Set<object>();

  const write = (node: unknown): void => {
    switch (typeof node) {
      case "string":
        parts.push(pythonJsonString(node, ascii));
        return;
      case "number":
        parts.push(pythonNumber(node));
        return;
      case "bigint":
        parts.push(node.toString());
        return;
      case "boolean":
        parts.push(node ? "true" : "false");
        return;
      case "object":
        break;
      default:
        throw new TypeError(`Object of type ${typeName(node)} is not JSON serializable`);
    }
    if (node === null) {
      parts.push("null");
      return;
    }
    if (stack.has(node)) throw new TypeError("Circular reference detected");
    if (Array.isArray(node)) {
      stack.add(node);
      parts.push("[");
      for (let i = 0; i < node.length; i++) {
        if (i > 0) parts.push(itemSeparator);
        write(node[i]);
      }
      parts.push("]");
      stack.delete(node);
      return;
    }
    if (!isPlainObject(node)) {
      throw new TypeError(`Object of type ${typeName(node)} is not JSON serializable`);
    }
    stack.add(node);
    const keys = Object.keys(node);
    if (sort) sortByCodePoint(keys);
    parts.push("{");
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i] as string;
      if (i > 0) parts.push(itemSeparator);
      parts.push(pythonJsonString(key, ascii), keySeparator);
      write(node[key]);
    }
    parts.push("}");
    stack.delete(node);
  };

  write(value);
  return parts.join("");
}
