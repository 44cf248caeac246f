import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";

/** The repository's copy of the test vectors (`vectors/` at the root; see its README). */
export const VECTORS_DIR = resolve(import.meta.dirname, "../../../vectors");

/** One entry of manifest.json. */
export interface ManifestEntry {
  mapping: Record<string, unknown>;
  canonical_b64: string;
  cache_key: string;
  value_b64: string;
}

/** The parts of manifest.json these tests use. */
export interface Manifest {
  tpm_key_hex: string;
  hmac_key_b64: string;
  written_at: number;
  entries: ManifestEntry[];
  nitrokeyhsm_plaintext_b64: string;
  files: Record<string, string>;
}

function requireVectors(): void {
  if (!existsSync(join(VECTORS_DIR, "manifest.json"))) {
    throw new Error(
      `test vectors not found at ${VECTORS_DIR}: they are part of the repository (vectors/ at its root); restore them with git`,
    );
  }
}

/** Reads a vector file as bytes. */
export function vector(name: string): Buffer {
  requireVectors();
  return readFileSync(join(VECTORS_DIR, name));
}

/** The parsed manifest.json. */
export function manifest(): Manifest {
  return JSON.parse(vector("manifest.json").toString("utf8")) as Manifest;
}
