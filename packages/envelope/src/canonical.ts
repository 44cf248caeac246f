import { pythonJsonDumps } from "./python-json.js";

/**
 * The bytes a mapping is keyed by (SPEC §6.3): Python's
 * `json.dumps(m, sort_keys=True, separators=(",", ":"))`, which is pure ASCII.
 */
export function canonicalMapping(mapping: Record<string, unknown>): Uint8Array {
  return Buffer.from(
    pythonJsonDumps(mapping, { sortKeys: true, separators: [",", ":"] }),
    "latin1",
  );
}
