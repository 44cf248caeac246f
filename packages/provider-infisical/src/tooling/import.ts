import { errorMessage, isPsiError, type Logger } from "@psi/core";
import { type InfisicalClient, normalizeSecretPath } from "../client.js";
import { infisicalErrorStatus } from "../errors.js";

/** What to do with a key that already exists at the target path. */
export type ConflictPolicy = "fail" | "skip" | "overwrite";

/** The outcome per key (`pending_approval`: written, waiting in Infisical's approval workflow). */
export type ImportOutcome = "created" | "skipped" | "overwritten" | "failed" | "pending_approval";

/** One secret to import; `error` instead of `value` reports a key that could not be read. */
export interface ImportItem {
  key: string;
  value?: string | undefined;
  /** Why the value could not be had (reported as `failed`; never a value). */
  error?: string | undefined;
  /** Where the key came from, for the report (`app.env:3`, `podman secret db`). */
  source?: string | undefined;
}

/** The result for one key: never its value. */
export interface ImportResult {
  key: string;
  outcome: ImportOutcome;
  reason?: string;
  source?: string;
}

/** The report of {@link importSecrets}. */
export interface ImportReport {
  project: string;
  environment: string;
  path: string;
  conflict: ConflictPolicy;
  dryRun: boolean;
  /** Folders created (or, in a dry run, the path when it does not exist yet). */
  foldersCreated: string[];
  results: ImportResult[];
  counts: Record<ImportOutcome, number>;
  /** False when any key failed. */
  ok: boolean;
}

/** Options of {@link importSecrets}. */
export interface ImportOptions {
  client: InfisicalClient;
  project: string;
  path: string;
  secrets: ReadonlyArray<ImportItem>;
  conflict: ConflictPolicy;
  /** Reads what exists and reports what would happen; writes nothing. */
  dryRun?: boolean;
  logger?: Logger;
  signal?: AbortSignal;
  /** Called after each key is settled. */
  onProgress?: (progress: { done: number; total: number }) => void;
  /** Secrets per batch request (default 100). */
  batchSize?: number;
  /** Parallel single-secret writes (overwrites, fallbacks; default 4). */
  concurrency?: number;
}

/** Why a key cannot be an Infisical secret key; undefined when it can. */
export function secretKeyProblem(key: string): string | undefined {
  if (key === "") return "the key is empty";
  if (/\s/.test(key)) return "the key contains whitespace";
  if (key.includes("/")) return "the key contains /";
  if (Buffer.byteLength(key, "utf8") > 255) return "the key is longer than 255 bytes";
  return undefined;
}

async function inParallel<T>(
  items: readonly T[],
  limit: number,
  work: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const runners = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await work(items[next++]!);
  });
  await Promise.all(runners);
}

function describe(error: unknown): string {
  if (isPsiError(error) && error.hint) return `${error.message} (${error.hint})`;
  return errorMessage(error);
}

/**
 * Imports secrets into one Infisical folder (SPEC §12): reads which keys exist there,
 * applies the conflict policy, creates missing folders, creates new keys in batches and
 * overwrites existing ones one by one. `conflict: "fail"` writes nothing when any key
 * exists. A failed batch is retried key by key so that every key gets its own outcome.
 * Values never appear in the report, errors or logs.
 */
export async function importSecrets(options: ImportOptions): Promise<ImportReport> {
  const { client, project, conflict, logger } = options;
  const path = normalizeSecretPath(options.path);
  const dryRun = options.dryRun === true;
  const call = { purpose: "setup" as const, signal: options.signal };
  const environment = client.project(project).environment;
  const results = new Map<string, ImportResult>();
  const total = options.secrets.length;
  let done = 0;
  const settle = (result: ImportResult) => {
    if (!results.has(result.key)) done++;
    results.set(result.key, result);
    options.onProgress?.({ done: Math.min(done, total), total });
  };
  const withSource = (item: ImportItem, result: Omit<ImportResult, "source">): ImportResult =>
    item.source === undefined ? result : { ...result, source: item.source };

  // Later items win, as later lines of a file do.
  const wanted = new Map<string, ImportItem & { value: string }>();
  for (const item of options.secrets) {
    const problem = item.error ?? secretKeyProblem(item.key);
    if (problem !== undefined || item.value === undefined) {
      wanted.delete(item.key);
      settle(withSource(item, { key: item.key, outcome: "failed", reason: problem ?? "no value" }));
      continue;
    }
    wanted.set(item.key, item as ImportItem & { value: string });
  }
  const foldersCreated: string[] = [];
  const finish = (): ImportReport => {
    const counts: Record<ImportOutcome, number> = {
      created: 0,
      skipped: 0,
      overwritten: 0,
      failed: 0,
      pending_approval: 0,
    };
    const ordered = [...results.values()].sort((a, b) => (a.key < b.key ? -1 : 1));
    for (const result of ordered) counts[result.outcome]++;
    return {
      project,
      environment,
      path,
      conflict,
      dryRun,
      foldersCreated,
      results: ordered,
      counts,
      ok: counts.failed === 0,
    };
  };
  const failAll = (items: Iterable<ImportItem>, reason: string) => {
    for (const item of items)
      settle(withSource(item, { key: item.key, outcome: "failed", reason }));
  };
  if (wanted.size === 0) return finish();

  let existing = new Set<string>();
  let folderMissing = false;
  try {
    const listed = await client.listSecrets({ project, path, recursive: false }, call);
    // Imported secrets live elsewhere: a key of the same name here is a new secret.
    existing = new Set(listed.filter((s) => s.importedFrom === undefined).map((s) => s.key));
  } catch (error) {
    if (infisicalErrorStatus(error) !== 404) {
      failAll(wanted.values(), describe(error));
      return finish();
    }
    folderMissing = path !== "/";
  }

  const toCreate: Array<ImportItem & { value: string }> = [];
  const toOverwrite: Array<ImportItem & { value: string }> = [];
  const clashes: Array<ImportItem & { value: string }> = [];
  for (const item of wanted.values()) {
    if (!existing.has(item.key)) toCreate.push(item);
    else if (conflict === "overwrite") toOverwrite.push(item);
    else if (conflict === "skip")
      settle(withSource(item, { key: item.key, outcome: "skipped", reason: "exists" }));
    else clashes.push(item);
  }
  if (clashes.length > 0) {
    failAll(clashes, `exists at ${path} (--conflict fail)`);
    for (const item of [...toCreate, ...toOverwrite]) {
      settle(
        withSource(item, {
          key: item.key,
          outcome: "skipped",
          reason: "not imported: other keys already exist (--conflict fail writes nothing)",
        }),
      );
    }
    return finish();
  }

  if (dryRun) {
    if (folderMissing) foldersCreated.push(path);
    for (const item of toCreate) settle(withSource(item, { key: item.key, outcome: "created" }));
    for (const item of toOverwrite)
      settle(withSource(item, { key: item.key, outcome: "overwritten" }));
    return finish();
  }

  if (folderMissing && toCreate.length > 0) {
    try {
      foldersCreated.push(...(await client.ensureFolderPath({ project, path }, call)));
    } catch (error) {
      failAll([...toCreate, ...toOverwrite], `cannot create folder ${path}: ${describe(error)}`);
      return finish();
    }
  }

  const concurrency = options.concurrency ?? 4;
  const createOne = async (item: ImportItem & { value: string }) => {
    try {
      const outcome = await client.createSecret(
        { project, path, key: item.key, value: item.value },
        call,
      );
      settle(
        withSource(item, {
          key: item.key,
          outcome: outcome === "pending_approval" ? "pending_approval" : "created",
        }),
      );
    } catch (error) {
      settle(withSource(item, { key: item.key, outcome: "failed", reason: describe(error) }));
    }
  };
  const batchSize = Math.max(1, options.batchSize ?? 100);
  for (let start = 0; start < toCreate.length; start += batchSize) {
    const batch = toCreate.slice(start, start + batchSize);
    try {
      const outcome = await client.createSecrets(
        { project, path, secrets: batch.map(({ key, value }) => ({ key, value })) },
        call,
      );
      for (const item of batch) {
        settle(
          withSource(item, {
            key: item.key,
            outcome: outcome === "pending_approval" ? "pending_approval" : "created",
          }),
        );
      }
    } catch (error) {
      const status = infisicalErrorStatus(error);
      if (status === undefined || status === 401 || status === 403) {
        failAll(batch, describe(error));
        continue;
      }
      // A batch is all or nothing; one key by one tells which key Infisical refused.
      logger?.debug("batch create refused; creating one key at a time", {
        event: "infisical.import",
        status,
      });
      await inParallel(batch, concurrency, createOne);
    }
  }

  await inParallel(toOverwrite, concurrency, async (item) => {
    try {
      const outcome = await client.updateSecret(
        { project, path, key: item.key, value: item.value },
        call,
      );
      settle(
        withSource(item, {
          key: item.key,
          outcome: outcome === "pending_approval" ? "pending_approval" : "overwritten",
        }),
      );
    } catch (error) {
      settle(withSource(item, { key: item.key, outcome: "failed", reason: describe(error) }));
    }
  });
  return finish();
}
