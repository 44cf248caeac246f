import { readFile } from "node:fs/promises";
import { errorMessage, type InfisicalConfig, type PsiContext, PsiError } from "@psi/core";
import {
  createInfisicalClient,
  type InfisicalClient,
  type InfisicalClientOptions,
} from "../client.js";
import { type EnvFormat, type FormattedSecrets, formatSecrets } from "./env-format.js";
import {
  type ConflictPolicy,
  type ImportItem,
  type ImportReport,
  importSecrets,
} from "./import.js";
import {
  envFileImportItems,
  type ImportSource,
  type QuadletReference,
  quadletImportItems,
  withEnvironment,
} from "./import-sources.js";
import { type LoginCheck, loginAll } from "./login-all.js";
import { createTlsManager, type TlsManager } from "./tls.js";
import { writeSecretFile } from "./write-file.js";

// The `psi infisical` operations (SPEC §12) over a PsiContext: each resolves the
// configuration, opens the client and runs one flow, so any frontend gets the same result.

/** The `providers.infisical` block of a context; throws `provider.not_configured` without one. */
export function infisicalSettings(context: PsiContext): InfisicalConfig {
  const config = context.config.providers?.infisical;
  if (!config) {
    throw new PsiError("provider.not_configured", "providers.infisical is not configured", {
      hint: "add a providers.infisical block (api_url, auth, projects) to the configuration",
    });
  }
  return config;
}

/** The folder an operation reads or writes: a configured project, a path, maybe another environment. */
export interface InfisicalTarget {
  project: string;
  path: string;
  /** Another environment than the project's configured one (`--environment`). */
  environment?: string | undefined;
}

/** Client options for a context; with a target, its project read in `target.environment`. */
export function contextClientOptions(
  context: PsiContext,
  target?: Pick<InfisicalTarget, "project" | "environment">,
): InfisicalClientOptions {
  const configured = infisicalSettings(context);
  const config =
    target === undefined
      ? configured
      : withEnvironment(configured, target.project, target.environment);
  return {
    config,
    stateDir: context.paths.stateDir,
    env: context.env,
    logger: context.logger.child({ provider: "infisical" }),
    ...(context.config.ca_cert === undefined ? {} : { caCert: context.config.ca_cert }),
  };
}

/** An Infisical client for a context (see {@link contextClientOptions}). */
export function openInfisicalClient(
  context: PsiContext,
  target?: Pick<InfisicalTarget, "project" | "environment">,
): InfisicalClient {
  return createInfisicalClient(contextClientOptions(context, target));
}

/**
 * `psi infisical login`: logs in with every configured auth and reports each (a failed
 * login is a check with `ok: false`); throws when there is nothing to log in with.
 */
export async function infisicalLogin(context: PsiContext): Promise<LoginCheck[]> {
  const options = contextClientOptions(context);
  if (Object.keys(options.config.projects).length === 0 && !options.config.auth) {
    throw new PsiError(
      "provider.not_configured",
      "providers.infisical has no projects and no auth to log in with",
      { hint: "add providers.infisical.auth and providers.infisical.projects" },
    );
  }
  return loginAll(options, { purpose: "setup" });
}

/** Options of {@link infisicalEnv}. */
export interface InfisicalEnvOptions extends InfisicalTarget {
  format: EnvFormat;
  /** Include sub-folders. */
  recursive?: boolean | undefined;
}

/**
 * `psi infisical env`: a folder's secrets in `format`; each key skipped or written with a
 * caveat is logged as a warning on the context's logger (the key, never the value).
 */
export async function infisicalEnv(
  context: PsiContext,
  options: InfisicalEnvOptions,
): Promise<FormattedSecrets> {
  const client = openInfisicalClient(context, options);
  const secrets = await client.listSecrets(
    { project: options.project, path: options.path, recursive: options.recursive === true },
    { purpose: "setup" },
  );
  const formatted = formatSecrets(secrets, options.format);
  const logger = context.logger;
  for (const { key, reason } of formatted.skipped) {
    logger.warn(`skipped ${key}: ${reason}`, { event: "infisical.env", key });
  }
  for (const { key, reason } of formatted.caveats) {
    logger.warn(`${key}: bash and systemd read it back exactly, but ${reason}`, {
      event: "infisical.env",
      key,
    });
  }
  return formatted;
}

/** Options of {@link infisicalWriteFile}. */
export interface InfisicalWriteFileOptions extends InfisicalTarget {
  key: string;
  file: string;
  /** Permission bits from creation (`parseFileMode` reads `--mode`). */
  mode: number;
  /** The secret holds base64: write the decoded bytes. */
  base64?: boolean | undefined;
}

/** `psi infisical write-file`: one secret's value written atomically to a file. */
export async function infisicalWriteFile(
  context: PsiContext,
  options: InfisicalWriteFileOptions,
): Promise<{ file: string; mode: number; bytes: number }> {
  return writeSecretFile({
    client: openInfisicalClient(context, options),
    project: options.project,
    path: options.path,
    key: options.key,
    file: options.file,
    mode: options.mode,
    ...(options.base64 ? { decode: "base64" as const } : {}),
  });
}

/** Where and how an import writes (`psi infisical import ...` flags). */
export interface InfisicalImportTarget extends InfisicalTarget {
  conflict: ConflictPolicy;
  /** Read what exists and report what would happen; write nothing. */
  dryRun?: boolean | undefined;
  /** Called after each key is settled. */
  onProgress?: (progress: { done: number; total: number }) => void;
  signal?: AbortSignal;
}

/** An import's report with the warnings its source produced. */
export type ImportRun = ImportReport & { warnings: string[] };

/** Imports gathered items into the target folder (creating folders), reporting each key. */
export async function infisicalImport(
  context: PsiContext,
  options: InfisicalImportTarget & { items: ImportItem[]; warnings?: string[] },
): Promise<ImportRun> {
  const report = await importSecrets({
    client: openInfisicalClient(context, options),
    project: options.project,
    path: options.path,
    secrets: options.items,
    conflict: options.conflict,
    dryRun: options.dryRun === true,
    logger: context.logger.child({ provider: "infisical" }),
    ...(options.onProgress === undefined ? {} : { onProgress: options.onProgress }),
    ...(options.signal === undefined ? {} : { signal: options.signal }),
  });
  return { ...report, warnings: options.warnings ?? [] };
}

/** The text of an import input file; throws `input.unreadable` naming it. */
export async function readImportInput(file: string): Promise<string> {
  try {
    return await readFile(file, "utf8");
  } catch (error) {
    throw new PsiError("input.unreadable", `cannot read ${file}: ${errorMessage(error)}`, {
      cause: error,
    });
  }
}

/** All of a stream as UTF-8 text. */
async function readText(stream: AsyncIterable<string | Uint8Array>): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) {
    chunks.push(typeof chunk === "string" ? Buffer.from(chunk) : Buffer.from(chunk));
  }
  return Buffer.concat(chunks).toString("utf8");
}

/** Logs each warning of an import source (they are `file:line: message` texts). */
function logWarnings(context: PsiContext, warnings: readonly string[]): void {
  for (const warning of warnings) context.logger.warn(warning, { event: "infisical.import" });
}

/**
 * `psi infisical import env-file`: the KEY=value lines of `file`, or of `stdin` when
 * `file` is `-` or omitted (as the reference reads it), imported into the target.
 */
export async function importEnvFile(
  context: PsiContext,
  options: InfisicalImportTarget & {
    file?: string | undefined;
    stdin: AsyncIterable<string | Uint8Array>;
  },
): Promise<ImportRun> {
  const fromStdin = options.file === undefined || options.file === "-";
  const file = fromStdin ? "stdin" : (options.file as string);
  const text = fromStdin ? await readText(options.stdin) : await readImportInput(file);
  const { items, warnings } = envFileImportItems(text, file);
  logWarnings(context, warnings);
  return infisicalImport(context, { ...options, items, warnings });
}

/**
 * The `Environment=` items and `Secret=` references of quadlet files, read from disk, with
 * their warnings logged; references are for the caller to resolve (through Podman).
 */
export async function readQuadletImport(
  context: PsiContext,
  files: readonly string[],
  options: { resolveSecrets?: boolean | undefined } = {},
): Promise<ImportSource & { references: QuadletReference[] }> {
  const inputs = [];
  for (const file of files) inputs.push({ file, text: await readImportInput(file) });
  const source = quadletImportItems(inputs, { resolveSecrets: options.resolveSecrets === true });
  logWarnings(context, source.warnings);
  return source;
}

/**
 * `psi infisical tls`: the manager of providers.infisical.tls.certificates, or undefined
 * when none are configured (throws `provider.not_configured` without an Infisical block).
 */
export function infisicalTls(context: PsiContext): TlsManager | undefined {
  const client = openInfisicalClient(context);
  const certificates = infisicalSettings(context).tls.certificates;
  if (Object.keys(certificates).length === 0) return undefined;
  return createTlsManager({
    client,
    certificates,
    stateDir: context.paths.stateDir,
    env: context.env,
    logger: context.logger.child({ provider: "infisical" }),
  });
}
