import { copyFile, readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { aesGcmBackend, type CacheCipher } from "@psi/envelope";

/** The repository's test vectors (`vectors/` at the root). */
export const VECTORS = fileURLToPath(new URL("../../../vectors/", import.meta.url));

export interface VectorEntry {
  mapping: Record<string, unknown>;
  cache_key: string;
  value_b64: string;
}

export interface Manifest {
  tpm_key_hex: string;
  hmac_key_b64: string;
  written_at: number;
  entries: VectorEntry[];
}

export async function manifest(): Promise<Manifest> {
  return JSON.parse(await readFile(join(VECTORS, "manifest.json"), "utf8")) as Manifest;
}

/** The real AES-GCM cipher of the tpm vectors (tag 0x01). */
export async function tpmVectorCipher(): Promise<CacheCipher> {
  return aesGcmBackend(Buffer.from((await manifest()).tpm_key_hex, "hex"), 0x01);
}

/** Copies a vector into `dir` (tests never touch the shared files). */
export async function copyVector(name: string, dir: string, as = "cache.enc"): Promise<string> {
  const target = join(dir, as);
  await copyFile(join(VECTORS, name), target);
  return target;
}
