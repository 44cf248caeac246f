import { pythonJsonDumps } from "@psi/envelope";
import { PsiError } from "./errors.js";

/**
 * The largest mapping file PSI reads: the lookup socket's `/store` body limit, so anything
 * bigger was not written through PSI (mappings are a few hundred bytes).
 */
export const MAX_MAPPING_BYTES = 1024 * 1024;

/** A parsed mapping file: any JSON object with a string `provider` (SPEC §3). */
export type Mapping = { provider: string } & Record<string, unknown>;

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
