import { join } from "node:path";
import { pythonJsonDumps } from "@psi/envelope";
import { isPsiError, PsiError } from "./errors.js";
import {
  type ReadRegularFileOptions,
  readRegularFile,
  readRegularFileSync,
} from "./read-regular.js";

/**
 * The largest mapping file PSI reads: the lookup socket's `/store` body limit, so anything
 * bigger was not written through PSI (mappings are a few hundred bytes).
 */
export const MAX_MAPPING_BYTES = 1024 * 1024;

/** A parsed mapping file: any JSON object with a string `provider` (SPEC §3). */
export type Mapping = { provider: string } & Record<string, unknown>;

/** Longest `provider` field a mapping may have (names such as "infisical" are far shorter). */
export const MAX_PROVIDER_NAME = 64;

/** Parses mapping bytes; throws `mapping.corrupt` naming `where` on anything else. */
export function parseMapping(bytes: Uint8Array | string, where = "mapping"): Mapping {
  const text = typeof bytes === "string" ? bytes : Buffer.from(bytes).toString("utf8");
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new PsiError("mapping.corrupt", `${where} is not valid JSON`, {
      cause: error,
      hint: "re-create the Podman secret (psi setup, or psi local store / psi nitrokeyhsm store)",
    });
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new PsiError("mapping.corrupt", `${where} is not a JSON object`, {
      hint: 'a mapping looks like {"provider": "infisical", ...}',
    });
  }
  const provider = (value as Record<string, unknown>)["provider"];
  if (typeof provider !== "string" || provider.length === 0) {
    throw new PsiError("mapping.corrupt", `${where} has no string "provider" field`, {
      hint: 'a mapping looks like {"provider": "infisical", ...}',
    });
  }
  // Provider names are short words; a huge one would be echoed into errors and logs.
  if (provider.length > MAX_PROVIDER_NAME) {
    throw new PsiError(
      "mapping.corrupt",
      `${where} has a "provider" field of ${provider.length} characters (at most ${MAX_PROVIDER_NAME})`,
      { hint: 'a mapping looks like {"provider": "infisical", ...}' },
    );
  }
  return value as Mapping;
}

/** The fields of an Infisical mapping. */
export interface InfisicalMappingFields {
  project: string;
  path: string;
  key: string;
}

/**
 * Infisical mapping bytes exactly as the reference's setup writes them (Python
 * `json.dumps` default form, key order provider, project, path, key): Podman stores
 * these bytes, so they must not change between implementations.
 */
export function infisicalMappingBytes(fields: InfisicalMappingFields): Uint8Array {
  const ordered = {
    provider: "infisical",
    project: fields.project,
    path: fields.path,
    key: fields.key,
  };
  return Buffer.from(pythonJsonDumps(ordered), "utf8");
}

/** How a mapping file is read: bounded, and with the fix for one that is not a mapping. */
function mappingFileOptions(id: string): ReadRegularFileOptions {
  return {
    maxBytes: MAX_MAPPING_BYTES,
    what: `the mapping of secret ${id}`,
    hint: `remove it (psi secret delete, or podman secret rm ${id}) and store it again`,
  };
}

/**
 * The bytes of `state_dir/<id>`, one secret's mapping file, read as mapping files must be
 * (a regular file, no symlink followed, at most {@link MAX_MAPPING_BYTES}); undefined when
 * there is none. Any other problem throws (see readRegularFile).
 */
export async function readMappingFile(stateDir: string, id: string): Promise<Buffer | undefined> {
  try {
    return await readRegularFile(join(stateDir, id), mappingFileOptions(id));
  } catch (error) {
    if (isPsiError(error, "fs.not_found")) return undefined;
    throw error;
  }
}

/**
 * {@link readMappingFile} without the thread pool, for the lookup hot path (a mapping is a
 * few hundred bytes on local disk: one open, fstat, read, close).
 */
export function readMappingFileSync(stateDir: string, id: string): Buffer | undefined {
  try {
    return readRegularFileSync(join(stateDir, id), mappingFileOptions(id));
  } catch (error) {
    if (isPsiError(error, "fs.not_found")) return undefined;
    throw error;
  }
}
