import { pythonJsonDumps } from "./python-json.js";

// JSON.stringify and Python's ensure_ascii json.dumps agree on every string whose
// JSON.stringify output is printable ASCII: both escape `"` and `\`, use \b \f \n \r \t,
// and write other control characters and lone surrogates as lowercase \uXXXX. They
// differ only where JSON.stringify leaves a character raw (DEL, non-ASCII).
const PRINTABLE_ASCII = /^[\x20-\x7e]*$/;

/**
 * The common mapping (a flat object of strings) through the engine's serializer: setup
 * keys thousands of mappings per save. Undefined when the general serializer is needed.
 */
function flatStringCanonical(mapping: Record<string, unknown>): string | undefined {
  const keys = Object.keys(mapping);
  for (const key of keys) {
    if (typeof mapping[key] !== "string") return undefined;
  }
  // UTF-16 order equals code-point order for the keys that pass the ASCII check below.
  const text = JSON.stringify(mapping, keys.sort());
  return PRINTABLE_ASCII.test(text) ? text : undefined;
}

/** The canonical mapping as a string (pure ASCII); see {@link canonicalMapping}. */
export function canonicalMappingText(mapping: Record<string, unknown>): string {
  return (
    flatStringCanonical(mapping) ??
    pythonJsonDumps(mapping, { sortKeys: true, separators: [",", ":"] })
  );
}

/**
 * The bytes a mapping is keyed by (SPEC §6.3): Python's
 * `json.dumps(m, sort_keys=True, separators=(",", ":"))`, which is pure ASCII.
 */
export function canonicalMapping(mapping: Record<string, unknown>): Uint8Array {
  return Buffer.from(canonicalMappingText(mapping), "latin1");
}
