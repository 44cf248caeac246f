import { errorMessage, type InfisicalConfig, type Mapping, PsiError } from "@psi/core";
import { parseEnvFile } from "./env-file.js";
import type { ImportItem } from "./import.js";
import { type PodmanSecretRef, resolvePodmanSecretValue } from "./podman-secrets.js";
import { parseQuadlet } from "./quadlet.js";

// `psi infisical import` sources as library functions: each turns its input into the
// ImportItems that importSecrets writes, with a `source` per key and warnings as text.

/** Import items and what the parse had to say about its input. */
export interface ImportSource {
  items: ImportItem[];
  /** `file:line: message` per line that was skipped or read with a caveat. */
  warnings: string[];
}

/** The KEY=value lines of a dotenv text, each sourced as `file:line`. */
export function envFileImportItems(text: string, file: string): ImportSource {
  const parsed = parseEnvFile(text);
  return {
    items: parsed.entries.map((entry) => ({
      key: entry.key,
      value: entry.value,
      source: `${file}:${entry.line}`,
    })),
    warnings: parsed.warnings.map((warning) => `${file}:${warning.line}: ${warning.message}`),
  };
}

/** A quadlet `Secret=` reference: the Podman secret, the key it is imported under, where. */
export interface QuadletReference {
  name: string;
  key: string;
  source: string;
}

/**
 * The `Environment=` lines of quadlet files as import items, and their `Secret=` references
 * (imported only when read through Podman: without `resolveSecrets` a warning counts them).
 */
export function quadletImportItems(
  files: ReadonlyArray<{ file: string; text: string }>,
  options: { resolveSecrets?: boolean } = {},
): ImportSource & { references: QuadletReference[] } {
  const items: ImportItem[] = [];
  const warnings: string[] = [];
  const references: QuadletReference[] = [];
  for (const { file, text } of files) {
    const parsed = parseQuadlet(text);
    warnings.push(
      ...parsed.warnings.map((warning) => `${file}:${warning.line}: ${warning.message}`),
    );
    for (const entry of parsed.environment) {
      items.push({ key: entry.key, value: entry.value, source: `${file}:${entry.line}` });
    }
    for (const secret of parsed.secrets) {
      references.push({
        name: secret.name,
        key: secret.key,
        source: `${file}:${secret.line} Secret=${secret.name}`,
      });
    }
  }
  if (references.length > 0 && options.resolveSecrets !== true) {
    const count = `${references.length} Secret= reference${references.length === 1 ? "" : "s"}`;
    warnings.push(`${count} not imported (add --resolve-secrets to read them through Podman)`);
  }
  return { items, warnings, references };
}

/** One Podman secret to import: its name, the key it goes under, where it was named. */
export interface PodmanImportWant {
  name: string;
  key: string;
  source: string;
  /** The source reported when no Podman secret has that name (default: `source`). */
  missingSource?: string;
}

/** Options of {@link podmanImportItems}. */
export interface PodmanImportOptions {
  /** Podman's secret listing (`listSecrets()` of @psi/podman). */
  listed: ReadonlyArray<PodmanSecretRef>;
  /** PSI's state_dir, where the shell driver keeps mappings. */
  stateDir: string;
  /** Resolves a PSI mapping to its value (the provider the mapping names). */
  lookup: (mapping: Mapping) => Promise<Uint8Array>;
}

/**
 * The values of Podman secrets as import items; a secret that is missing or cannot be read
 * becomes an item with an `error` (reported as failed, never thrown).
 */
export async function podmanImportItems(
  wants: ReadonlyArray<PodmanImportWant>,
  options: PodmanImportOptions,
): Promise<ImportItem[]> {
  const byName = new Map(options.listed.map((secret) => [secret.name, secret]));
  const items: ImportItem[] = [];
  for (const want of wants) {
    const secret = byName.get(want.name);
    if (secret === undefined) {
      items.push({
        key: want.key,
        error: `no Podman secret named ${want.name}`,
        source: want.missingSource ?? want.source,
      });
      continue;
    }
    try {
      const value = await resolvePodmanSecretValue(secret, options);
      items.push({ key: want.key, value, source: want.source });
    } catch (error) {
      const hint = error instanceof PsiError && error.hint ? ` (${error.hint})` : "";
      items.push({ key: want.key, error: `${errorMessage(error)}${hint}`, source: want.source });
    }
  }
  return items;
}

/**
 * The configuration with one project read in another environment (`--environment`): the
 * project is looked up as configured, with its environment slug replaced.
 */
export function withEnvironment(
  config: InfisicalConfig,
  project: string,
  environment: string | undefined,
): InfisicalConfig {
  const configured = environment ? config.projects[project] : undefined;
  if (configured === undefined || !environment) return config;
  return {
    ...config,
    projects: { ...config.projects, [project]: { ...configured, environment } },
  };
}
