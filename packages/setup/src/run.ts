import { type PreparedCacheSave, prepareCacheSave, saveCache } from "@psi/cache";
import type {
  FetchedSecret,
  Logger,
  Mapping,
  Provider,
  PsiContext,
  WorkloadConfig,
} from "@psi/core";
import {
  errorMessage,
  isPsiError,
  PsiError,
  parseMapping,
  readMappingFile,
  secretIdProblem,
} from "@psi/core";
import type { CacheCipher } from "@psi/envelope";
import type { PodmanClient, PodmanSecret } from "@psi/podman";
import { providerFetchesRemotely } from "@psi/unitgen";
import { type DaemonReloadOutcome, daemonReload } from "./daemon-reload.js";
import { differingDriverOptions } from "./driver-options.js";
import { writeDropIn } from "./drop-in.js";
import { createLimit } from "./limit.js";
import { keyProblem, ownerOf, podmanSecretName } from "./names.js";
import { type RestartResult, restartUnit, restartUnitOf } from "./restart.js";
import type {
  CacheOutcome,
  SetupIssue,
  SetupProgress,
  SetupResult,
  WorkloadChanges,
  WorkloadOutcome,
} from "./types.js";

/** Parallel requests per resource (provider, Podman) when the caller does not say. */
export const DEFAULT_CONCURRENCY = 8;

/** The cache file setup refreshes and the backend that encrypts it. */
export interface SetupCache {
  /** `cache.path` or `<state_dir>/cache.enc`. */
  path: string;
  /**
   * The opened backend, or a function that opens it. The function is called once, when
   * setup starts (the previous file is read and each source's secrets are keyed while the
   * providers fetch); when it throws, setup warns and carries on (SPEC §9).
   */
  backend: CacheCipher | (() => Promise<CacheCipher | undefined>);
}

/** Wraps one provider operation in the provider's retry policy (Infisical: `retry_delays`). */
export type SetupRetry = <T>(
  operation: () => Promise<T>,
  info: { provider: string; signal: AbortSignal | undefined },
) => Promise<T>;

/** Options of {@link runSetup}. */
export interface SetupOptions {
  /** Config, paths (state_dir, systemd_dir), scope, logger and environment. */
  context: PsiContext;
  /** The opened providers by name; a workload whose provider is missing fails (fetching) or is skipped (store-only). */
  providers: ReadonlyMap<string, Provider>;
  podman: PodmanClient;
  /** The cache to refresh; omitted when the cache is off. */
  cache?: SetupCache | undefined;
  /** Only the workloads of this provider (`psi setup --provider P`). */
  provider?: string | undefined;
  /** Parallel provider requests, and parallel Podman registrations (default {@link DEFAULT_CONCURRENCY}). */
  concurrency?: number;
  /** Called whenever a source, a secret or a workload is done. */
  onProgress?: (progress: SetupProgress) => void;
  /** false: no daemon-reload; a function: called instead of the built-in one. Default: built-in. */
  daemonReload?: boolean | (() => Promise<DaemonReloadOutcome>);
  /** Retry policy for provider listings; default: no retries. */
  retry?: SetupRetry;
  /**
   * The shell driver options `psi install` would write now. A registered secret whose
   * mapping file and options are both current is left alone instead of being re-created.
   */
  expectedDriverOptions?: Readonly<Record<string, string>> | undefined;
  /** Delete and re-create every secret even when it is current (the reference's behaviour). */
  reregister?: boolean;
  /**
   * Let a source that lists no secrets remove what its workload had (`psi setup
   * --allow-empty`; per workload: `allow_empty: true`). Otherwise those are kept and the
   * workload fails.
   */
  allowEmpty?: boolean;
  signal?: AbortSignal;
  /** Clock in milliseconds (the cache's `written_at`). */
  now?: () => number;
  /**
   * Restarts for `on_change: restart` workloads: false turns them off; a function replaces
   * systemd (it gets the unit to restart). Default: systemd through D-Bus or systemctl.
   */
  restart?: false | ((unit: string) => Promise<RestartResult[]>);
  /**
   * Called once before the first restart with the new file's `written_at`: the CLI waits
   * there until the running serve has loaded it, so a restarted container gets the new value.
   */
  beforeRestart?: (writtenAt: number) => Promise<void>;
}

type Kind = "fetch" | "store" | "unavailable";

interface WorkloadState {
  name: string;
  config: WorkloadConfig;
  kind: Kind;
  outcome: WorkloadOutcome;
  merged: Map<string, FetchedSecret>;
  /** Mappings of secrets kept from earlier runs because a source listed nothing. */
  kept: Mapping[];
}

function issueFrom(stage: SetupIssue["stage"], error: unknown, extra: Partial<SetupIssue> = {}) {
  const issue: SetupIssue = {
    stage,
    code: isPsiError(error) ? error.code : "internal",
    message: errorMessage(error),
    ...extra,
  };
  if (isPsiError(error) && error.hint !== undefined) issue.hint = error.hint;
  return issue;
}

function describeSource(source: Readonly<Record<string, unknown>>): string {
  return Object.entries(source)
    .map(([key, value]) => `${key}=${typeof value === "string" ? value : JSON.stringify(value)}`)
    .join(" ");
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && Buffer.compare(a, b) === 0;
}

/** What went wrong in a setup run, counted: each non-zero count makes {@link SetupResult.ok} false. */
export interface SetupFailures {
  /** Workloads whose status is `failed`. */
  workloads: number;
  /** Podman secrets not in this fetch. */
  drift: number;
  /** Problems not tied to one workload (the Podman API being unreachable). */
  errors: number;
  /** 1 when the cache could not be written (an unavailable backend is not a failure). */
  cache: number;
  /** Restarts that did not bring a unit back (`failed`, or `skipped` after one that failed). */
  restarts: number;
}

/** The failures of a setup run by kind; all zero exactly when the run is ok. */
export function setupFailures(
  result: Pick<SetupResult, "workloads" | "drift" | "cache" | "errors">,
): SetupFailures {
  return {
    workloads: result.workloads.filter((workload) => workload.status === "failed").length,
    drift: result.drift.length,
    errors: result.errors.length,
    cache: result.cache.status === "failed" ? 1 : 0,
    restarts: result.workloads
      .flatMap((workload) => workload.restarts ?? [])
      .filter((restart) => restart.status !== "restarted" && restart.status !== "not-running")
      .length,
  };
}

/**
 * `psi setup` as a library (SPEC §9): lists every source of the selected workloads once
 * (shared sources deduplicated by `provider.sourceKey`), merges them per workload in
 * source order, registers `<workload>--<KEY>` shell secrets through the Podman API,
 * reports drift, writes the drop-ins, refreshes the cache (pruning only after a complete
 * run) and asks systemd to reload. Work runs in parallel with bounded concurrency; the
 * result lists workloads in config order. Throws only for a bad request (unknown
 * provider filter); everything else is reported in the result.
 */
export async function runSetup(options: SetupOptions): Promise<SetupResult> {
  const { context, providers, podman, signal } = options;
  const { config, logger } = context;
  const concurrency = Math.max(1, Math.floor(options.concurrency ?? DEFAULT_CONCURRENCY));
  const fetchLimit = createLimit(concurrency);
  const podmanLimit = createLimit(concurrency);
  const retry: SetupRetry = options.retry ?? ((operation) => operation());
  const stateDir = context.paths.stateDir;
  const systemdDir = context.paths.systemdDir;

  const configured = Object.keys(config.providers ?? {}).filter(
    (name) => (config.providers as Record<string, unknown>)[name] !== undefined,
  );
  const allWorkloads = Object.entries(config.workloads ?? {});
  if (
    options.provider !== undefined &&
    !configured.includes(options.provider) &&
    !allWorkloads.some(([, workload]) => workload.provider === options.provider)
  ) {
    throw new PsiError(
      "setup.unknown_provider",
      `provider "${options.provider}" is not configured`,
      {
        hint: configured.length
          ? `configured providers: ${configured.join(", ")}`
          : "add it under providers in the configuration",
      },
    );
  }

  const kindOf = (name: string): Kind => {
    const provider = providers.get(name);
    if (provider) return provider.listSource ? "fetch" : "store";
    return providerFetchesRemotely(name) ? "unavailable" : "store";
  };

  const states: WorkloadState[] = allWorkloads
    .filter(
      ([, workload]) => options.provider === undefined || workload.provider === options.provider,
    )
    .map(([name, workload]) => ({
      name,
      config: workload,
      kind: kindOf(workload.provider),
      merged: new Map(),
      kept: [],
      outcome: {
        name,
        provider: workload.provider,
        status: "ok",
        fetched: false,
        keys: [],
        created: [],
        replaced: [],
        unchanged: [],
        kept: [],
        drift: [],
        errors: [],
      },
    }));
  const workloadNames = allWorkloads.map(([name]) => name);

  const progress: SetupProgress = {
    sources: { done: 0, total: 0 },
    secrets: { done: 0, total: 0 },
    workloads: { done: 0, total: states.length },
  };
  const report = () => options.onProgress?.(structuredClone(progress));

  // Podman's view before this run: drift, and which secrets are already current.
  const listing = podman.listSecrets(signal ? { signal } : {}).then(
    (secrets) => ({ ok: true as const, secrets }),
    (error: unknown) => ({ ok: false as const, error }),
  );

  // The cache save starts from the previous file and its HMAC key: read them while the
  // providers fetch, and key each source's secrets as they arrive, so what is left after
  // the last fetch is encoding, encryption and one atomic write.
  const preparing = options.cache ? prepareSave(options.cache) : undefined;
  const fetches = new Map<string, Promise<FetchedSecret[]>>();
  let references = 0;
  let failedSources = 0;
  const fetchSource = (
    providerName: string,
    provider: Provider,
    source: Readonly<Record<string, unknown>>,
  ): Promise<FetchedSecret[]> => {
    references++;
    let id: string;
    try {
      id = `${providerName}\u0000${provider.sourceKey ? provider.sourceKey(source) : JSON.stringify(source)}`;
    } catch (error) {
      return Promise.reject(error);
    }
    const known = fetches.get(id);
    if (known) return known;
    progress.sources.total++;
    report();
    const list = provider.listSource!.bind(provider);
    const running = retry(() => fetchLimit(() => list(source, signal ? { signal } : {})), {
      provider: providerName,
      signal,
    });
    running.then(
      (secrets) => {
        progress.sources.done++;
        report();
        void preparing?.then((ready) => {
          if ("prepared" in ready)
            for (const secret of secrets) ready.prepared.keyOf(secret.mapping);
        });
      },
      () => {
        failedSources++;
        progress.sources.done++;
        report();
      },
    );
    fetches.set(id, running);
    return running;
  };

  const mappingIsCurrent = async (existing: PodmanSecret, bytes: Uint8Array): Promise<boolean> => {
    if (options.reregister || existing.driver !== "shell") return false;
    if (
      options.expectedDriverOptions &&
      differingDriverOptions(existing.driverOptions, options.expectedDriverOptions).length > 0
    ) {
      return false;
    }
    if (secretIdProblem(existing.id) !== undefined) return false;
    const stored = await readMappingFile(stateDir, existing.id).catch(() => undefined);
    return stored !== undefined && sameBytes(stored, bytes);
  };

  const register = async (
    name: string,
    secret: FetchedSecret,
    existing: PodmanSecret | undefined,
  ): Promise<"created" | "replaced" | "unchanged"> => {
    // Reading the mapping file needs no Podman slot; only the API calls are limited.
    if (existing && (await mappingIsCurrent(existing, secret.mappingBytes))) return "unchanged";
    const call = signal ? { signal } : {};
    return podmanLimit(async () => {
      if (existing) {
        await podman.deleteSecret(name, call);
        await podman.createSecret(name, secret.mappingBytes, call);
        return "replaced";
      }
      try {
        await podman.createSecret(name, secret.mappingBytes, call);
        return "created";
      } catch (error) {
        // Created by someone else since the listing: replace it as setup always does.
        if (!isPsiError(error, "podman.secret_exists")) throw error;
        await podman.deleteSecret(name, call);
        await podman.createSecret(name, secret.mappingBytes, call);
        return "replaced";
      }
    });
  };

  // A source that lists nothing while its workload still has secrets is more often a
  // mistyped path, an emptied folder or a server answering a missing folder with an empty
  // 200 than an intent: without the operator's word, pruning would leave the next outage
  // with nothing. Keep the Podman secrets, the drop-in and the cached values; fail the
  // workload with the fix.
  const guardEmptySources = async (
    state: WorkloadState,
    empty: ReadonlyArray<Readonly<Record<string, unknown>>>,
    secrets: readonly PodmanSecret[],
    log: Logger,
  ): Promise<void> => {
    const { outcome } = state;
    const held = secrets.filter((secret) => {
      if (secret.driver !== "shell") return false;
      const owner = ownerOf(secret.name, workloadNames);
      return owner?.workload === state.name && !state.merged.has(owner.key);
    });
    if (held.length === 0) return;
    const where = empty.map(describeSource).join("; ");
    const keys = held.map((secret) => ownerOf(secret.name, workloadNames)!.key).sort();
    if (options.allowEmpty === true || state.config.allow_empty === true) {
      log.warn(
        `source ${where} listed no secrets; workload ${state.name} loses ${keys.join(", ")} as allowed (allow_empty)`,
        { event: "setup.empty_source", outcome: "allowed", keys },
      );
      return;
    }
    for (const secret of held) {
      if (secretIdProblem(secret.id) !== undefined) continue;
      const bytes = await readMappingFile(stateDir, secret.id).catch(() => undefined);
      if (bytes === undefined) continue;
      try {
        state.kept.push(parseMapping(bytes, `mapping of ${secret.name}`));
      } catch {
        // An unreadable mapping has no cache entry to keep; the Podman secret stays anyway.
      }
    }
    outcome.kept = keys;
    const issue: SetupIssue = {
      stage: "fetch",
      code: "setup.empty_source",
      message: `source ${where} listed no secrets, but workload ${state.name} has ${keys.join(", ")} from an earlier run; kept them (Podman secrets, drop-in, cache)`,
      hint: `check the source's project and path (a mistyped path, an emptied folder, or an Infisical that answers a missing folder with an empty list); if ${state.name} is meant to lose them, run \`psi setup --allow-empty\` or set workloads.${state.name}.allow_empty: true`,
      source: empty[0]!,
    };
    outcome.errors.push(issue);
    log.warn(issue.message, { event: "setup.empty_source", outcome: "kept", fix: issue.hint });
  };

  const runWorkload = async (state: WorkloadState): Promise<void> => {
    const { outcome } = state;
    const log = logger.child({ workload: state.name, provider: outcome.provider });
    if (state.kind === "store") {
      outcome.status = "store-only";
      outcome.note = `secrets of workload ${state.name} are created with \`psi ${outcome.provider} store NAME\`, not fetched by setup`;
      log.info(outcome.note, { event: "setup.store_only" });
      return;
    }
    const provider = providers.get(outcome.provider);
    if (state.kind === "unavailable" || !provider) {
      outcome.errors.push({
        stage: "provider",
        code: "setup.provider_unavailable",
        message: `provider ${outcome.provider} is not available (it is not configured or failed to open)`,
        hint: `check providers.${outcome.provider} in the configuration and the warnings above`,
      });
      return;
    }

    // Fetch: every source, merged in source order (later wins on a key clash).
    const lists = await Promise.allSettled(
      state.config.secrets.map((source) => fetchSource(outcome.provider, provider, source)),
    );
    lists.forEach((list, index) => {
      if (list.status === "rejected") {
        const source = state.config.secrets[index]!;
        outcome.errors.push(issueFrom("fetch", list.reason, { source }));
        log.error(`cannot list ${describeSource(source)}: ${errorMessage(list.reason)}`, {
          event: "setup.fetch_failed",
          source,
          code: isPsiError(list.reason) ? list.reason.code : undefined,
        });
      }
    });
    if (outcome.errors.length > 0) return;
    for (const list of lists) {
      if (list.status !== "fulfilled") continue;
      for (const secret of list.value) {
        state.merged.delete(secret.key);
        state.merged.set(secret.key, secret);
      }
    }
    outcome.fetched = true;
    outcome.keys = [...state.merged.keys()].sort();

    // Register: needs Podman's listing (drift, current secrets).
    const podmanView = await listing;
    if (!podmanView.ok) {
      outcome.errors.push(issueFrom("podman", podmanView.error));
      return;
    }
    const byName = new Map(podmanView.secrets.map((secret) => [secret.name, secret]));
    const empty = state.config.secrets.filter((_, index) => {
      const list = lists[index]!;
      return list.status === "fulfilled" && list.value.length === 0;
    });
    if (empty.length > 0) await guardEmptySources(state, empty, podmanView.secrets, log);
    progress.secrets.total += outcome.keys.length;
    report();
    const registrations = await Promise.allSettled(
      outcome.keys.map((key) => {
        const name = podmanSecretName(state.name, key);
        const problem = keyProblem(key);
        const done = () => {
          progress.secrets.done++;
          report();
        };
        if (problem !== undefined) {
          done();
          return Promise.reject(
            new PsiError("setup.bad_key", `cannot register ${name}: ${problem}`, {
              hint: `rename ${key} in the provider`,
            }),
          );
        }
        return register(name, state.merged.get(key)!, byName.get(name)).finally(done);
      }),
    );
    registrations.forEach((registration, index) => {
      const key = outcome.keys[index]!;
      const name = podmanSecretName(state.name, key);
      if (registration.status === "fulfilled") {
        outcome[registration.value].push(key);
      } else {
        outcome.errors.push(issueFrom("register", registration.reason, { secret: name }));
        log.error(`cannot register ${name}: ${errorMessage(registration.reason)}`, {
          event: "setup.register_failed",
          secret: name,
        });
      }
    });

    // Drift: shell secrets of this workload that the fetch no longer has.
    for (const secret of podmanView.secrets) {
      if (secret.driver !== "shell") continue;
      const owner = ownerOf(secret.name, workloadNames);
      if (owner?.workload !== state.name || state.merged.has(owner.key)) continue;
      if (outcome.kept.includes(owner.key)) continue;
      outcome.drift.push({
        workload: state.name,
        secret: secret.name,
        key: owner.key,
        fix: `if ${owner.key} lives in a subfolder of a source, set recursive: true on it; otherwise remove it: podman secret rm ${secret.name}`,
      });
    }
    outcome.drift.sort((a, b) => (a.secret < b.secret ? -1 : a.secret > b.secret ? 1 : 0));
    for (const drift of outcome.drift) {
      log.warn(`drift: Podman secret ${drift.secret} is not in this fetch`, {
        event: "setup.drift",
        secret: drift.secret,
        fix: drift.fix,
      });
    }
    if (outcome.errors.length > 0) return;

    // Drop-in: only once every secret it names is registered.
    try {
      outcome.dropIn = await writeDropIn({
        systemdDir,
        workload: state.name,
        keys: outcome.keys,
        dependsOn: state.config.depends_on,
      });
    } catch (error) {
      outcome.errors.push(issueFrom("drop-in", error));
      log.error(`cannot write the drop-in of ${state.name}: ${errorMessage(error)}`, {
        event: "setup.drop_in_failed",
      });
      return;
    }
    log.info(
      `workload ${state.name}: ${outcome.keys.length} secrets (${outcome.created.length} new, ` +
        `${outcome.replaced.length} re-created, ${outcome.unchanged.length} current); ` +
        `drop-in ${outcome.dropIn.written ? "written" : "unchanged"}`,
      { event: "setup.workload", keys: outcome.keys.length, drop_in: outcome.dropIn.path },
    );
  };

  report();
  await Promise.all(
    states.map((state) =>
      runWorkload(state)
        .catch((error: unknown) => {
          state.outcome.errors.push(issueFrom("provider", error));
        })
        .finally(() => {
          if (state.outcome.errors.length > 0) state.outcome.status = "failed";
          progress.workloads.done++;
          report();
        }),
    ),
  );

  const errors: SetupIssue[] = [];
  const podmanView = await listing;
  if (!podmanView.ok) errors.push(issueFrom("podman", podmanView.error));

  if (preparing) await detectChanges(states, await preparing);
  else for (const state of states) noteUnknownChanges(state, "no cache is configured");
  const cache = await refreshCache(options, preparing, states, allWorkloads, kindOf, logger);
  const written = states.some((state) => state.outcome.dropIn?.written === true);
  const reload = await reloadUnits(options, context, written, logger);
  await restartChanged(options, context, states, cache, logger);

  const workloads = states.map((state) => state.outcome);
  const drift = workloads.flatMap((workload) => workload.drift);
  const failures = setupFailures({ workloads, drift, cache, errors });
  return {
    ok: Object.values(failures).every((count) => count === 0),
    ...(options.provider === undefined ? {} : { provider: options.provider }),
    workloads,
    sources: { listed: fetches.size, references, failed: failedSources },
    drift,
    cache,
    daemonReload: reload,
    errors,
  };
}

function noteUnknownChanges(state: WorkloadState, reason: string): void {
  if (state.outcome.fetched && state.outcome.errors.length === 0)
    state.outcome.changes = { known: false, reason };
}

/**
 * Compares each fully fetched workload's values with the previous cache.enc (bytes in
 * memory; only key names leave this function). Runs before the save, which builds the
 * new file from the previous entries.
 */
async function detectChanges(states: WorkloadState[], ready: PreparedSave): Promise<void> {
  if (!("prepared" in ready)) {
    for (const state of states) noteUnknownChanges(state, "the cache backend is not available");
    return;
  }
  const { previous, keyOf } = ready.prepared;
  for (const state of states) {
    if (!state.outcome.fetched || state.outcome.errors.length > 0) continue;
    if (previous === null) {
      noteUnknownChanges(state, "there is no previous cache.enc to compare with");
      continue;
    }
    const changes: WorkloadChanges & { known: true } = { known: true, changed: [], added: [] };
    for (const key of state.outcome.keys) {
      const secret = state.merged.get(key)!;
      const before = previous.entries.get(keyOf(secret.mapping as Record<string, unknown>));
      if (before === undefined) changes.added.push(key);
      else if (!sameBytes(before, secret.value)) changes.changed.push(key);
    }
    if (changes.added.length === state.outcome.keys.length && changes.added.length > 0) {
      noteUnknownChanges(state, "the previous cache.enc held none of its values");
    } else {
      state.outcome.changes = changes;
    }
  }
}

/**
 * `on_change: restart` (after the cache is written, never instead of it): restarts the
 * unit of each workload whose values changed, one workload after the other.
 */
async function restartChanged(
  options: SetupOptions,
  context: PsiContext,
  states: WorkloadState[],
  cache: CacheOutcome,
  logger: Logger,
): Promise<void> {
  if (options.restart === false) return;
  for (const state of states) {
    if (state.config.on_change === "restart")
      state.outcome.restartUnit = restartUnitOf(state.name, state.config);
  }
  const due = states.filter((state) => {
    const { changes } = state.outcome;
    if (state.config.on_change !== "restart" || state.outcome.status === "failed") return false;
    if (changes?.known !== true) {
      if (changes)
        logger.info(
          `workload ${state.name}: cannot tell which values changed (${changes.reason}); nothing restarted`,
          { event: "setup.restart", workload: state.name, outcome: "unknown" },
        );
      return false;
    }
    return changes.changed.length + changes.added.length > 0;
  });
  if (due.length === 0) return;
  if (cache.status !== "written") {
    // serve answers from its cache: a restart now would hand the container the old value.
    for (const state of due) {
      logger.warn(
        `workload ${state.name}: values changed but the cache was not written; not restarted`,
        { event: "setup.restart", workload: state.name, outcome: "not_written" },
      );
    }
    return;
  }
  await options.beforeRestart?.(cache.writtenAt);
  for (const state of due) {
    const unit = state.outcome.restartUnit!;
    const changes = state.outcome.changes as WorkloadChanges & { known: true };
    const keys = [...changes.changed, ...changes.added].sort();
    const results =
      typeof options.restart === "function"
        ? await options.restart(unit)
        : await restartUnit(unit, { scope: context.scope, env: context.env });
    state.outcome.restarts = results;
    for (const result of results) {
      const fields = {
        event: "setup.restart",
        workload: state.name,
        unit: result.unit,
        outcome: result.status,
        keys,
      };
      if (result.status === "failed" || result.status === "skipped") {
        logger.warn(
          `workload ${state.name}: ${result.unit} ${result.status === "failed" ? "could not be restarted" : "was not restarted"}: ${result.detail}`,
          fields,
        );
      } else {
        logger.info(
          `workload ${state.name}: ${result.unit} ${result.status === "restarted" ? "restarted" : "is not running; nothing to restart"} (changed: ${keys.join(", ")})`,
          fields,
        );
      }
    }
  }
}

async function reloadUnits(
  options: SetupOptions,
  context: PsiContext,
  dropInsChanged: boolean,
  logger: Logger,
): Promise<DaemonReloadOutcome> {
  if (options.daemonReload === false) return { status: "skipped", reason: "disabled" };
  if (!dropInsChanged) return { status: "skipped", reason: "no drop-in changed" };
  const outcome =
    typeof options.daemonReload === "function"
      ? await options.daemonReload()
      : await daemonReload({ scope: context.scope, env: context.env });
  if (outcome.status === "unavailable") {
    logger.warn(
      `cannot reload systemd (${outcome.detail}); run \`systemctl${context.scope === "user" ? " --user" : ""} daemon-reload\` so quadlet picks up the new drop-ins`,
      { event: "setup.daemon_reload", outcome: "unavailable" },
    );
  } else if (outcome.status === "reloaded") {
    logger.info(`systemd reloaded (${outcome.via})`, {
      event: "setup.daemon_reload",
      outcome: "reloaded",
    });
  }
  return outcome;
}

/** The backend and the prepared save, or why the cache cannot be refreshed. */
type PreparedSave =
  | { backend: CacheCipher; prepared: PreparedCacheSave }
  | { unavailable: unknown }
  | { disabled: true };

/** Opens the backend and reads the previous file; never rejects. */
async function prepareSave(cache: SetupCache): Promise<PreparedSave> {
  let backend: CacheCipher | undefined;
  try {
    backend = typeof cache.backend === "function" ? await cache.backend() : cache.backend;
  } catch (error) {
    return { unavailable: error };
  }
  if (!backend) return { disabled: true };
  return { backend, prepared: await prepareCacheSave({ path: cache.path, backend }) };
}

async function refreshCache(
  options: SetupOptions,
  preparing: Promise<PreparedSave> | undefined,
  states: WorkloadState[],
  allWorkloads: Array<[string, WorkloadConfig]>,
  kindOf: (provider: string) => Kind,
  logger: Logger,
): Promise<CacheOutcome> {
  const cache = options.cache;
  if (!cache) return { status: "disabled", reason: "no cache backend is configured" };
  const fetching = states.filter((state) => state.kind !== "store");
  if (options.provider !== undefined && fetching.length === 0) {
    return {
      status: "skipped",
      reason: `provider ${options.provider} fetches nothing; the cache is left as it is`,
    };
  }
  // Complete: every workload of every fetching provider was part of this run and fetched.
  const byName = new Map(states.map((state) => [state.name, state]));
  const complete = allWorkloads.every(([name, workload]) => {
    if (kindOf(workload.provider) === "store") return true;
    return byName.get(name)?.outcome.fetched === true;
  });
  const fetched = states.flatMap((state) =>
    state.outcome.fetched
      ? [...state.merged.values()].map((secret) => ({
          mapping: secret.mapping as Record<string, unknown>,
          value: secret.value,
        }))
      : [],
  );
  if (!complete && fetched.length === 0) {
    logger.warn("nothing was fetched; the cache file is left untouched", {
      event: "setup.cache",
      outcome: "skipped",
    });
    return { status: "skipped", reason: "nothing was fetched; the cache file is left untouched" };
  }

  const ready = (await preparing) ?? { disabled: true as const };
  if ("unavailable" in ready) {
    const issue = issueFrom("provider", ready.unavailable);
    logger.warn(
      `cache backend unavailable (${issue.message}); the cache is not refreshed and container starts will hit the live provider`,
      { event: "setup.cache", outcome: "unavailable", code: issue.code },
    );
    return {
      status: "unavailable",
      code: issue.code,
      message: issue.message,
      ...(issue.hint === undefined ? {} : { hint: issue.hint }),
    };
  }
  if ("disabled" in ready) return { status: "disabled", reason: "no cache backend is configured" };
  const { backend, prepared } = ready;
  const { previous } = prepared;
  // Values kept because a source listed nothing (guardEmptySources) go back in unchanged.
  for (const state of states) {
    if (!state.outcome.fetched) continue;
    for (const mapping of state.kept) {
      const value = previous?.entries.get(prepared.keyOf(mapping));
      if (value !== undefined) fetched.push({ mapping, value });
    }
  }
  const previousUnreadable = prepared.previousError?.message;
  if (prepared.previousError) {
    logger.warn(
      `existing cache ${cache.path} is unreadable (${previousUnreadable}); starting a fresh one`,
      { event: "setup.cache", outcome: "previous_unreadable", code: prepared.previousError.code },
    );
  }

  if (!complete && previous !== null) {
    // A partial run only adds and updates; with nothing new, keep the file (and its
    // written_at, which tells `psi status` how stale the rest is).
    const { entries } = previous;
    const changes = fetched.some(({ mapping, value }) => {
      const before = entries.get(prepared.keyOf(mapping));
      return before === undefined || !sameBytes(before, value);
    });
    if (!changes) {
      return {
        status: "unchanged",
        path: cache.path,
        reason: "partial run with nothing new; the cache file is left as it is",
      };
    }
  }

  try {
    const saved = await saveCache({
      path: cache.path,
      backend,
      prepared,
      fetched,
      prune: complete,
      logger,
      ...(options.now ? { now: options.now } : {}),
    });
    logger.info(
      `cache ${saved.path}: ${saved.entries} entries (${saved.added} added, ${saved.updated} updated, ${saved.pruned} pruned${complete ? "" : "; partial run, nothing pruned"})`,
      {
        event: "setup.cache",
        outcome: "written",
        entries: saved.entries,
        added: saved.added,
        updated: saved.updated,
        pruned: saved.pruned,
      },
    );
    return {
      status: "written",
      path: saved.path,
      entries: saved.entries,
      added: saved.added,
      updated: saved.updated,
      unchanged: saved.unchanged,
      pruned: saved.pruned,
      pruneApplied: complete,
      writtenAt: saved.writtenAt,
      ...(previousUnreadable === undefined ? {} : { previousUnreadable }),
    };
  } catch (error) {
    const issue = issueFrom("provider", error);
    logger.error(`cannot write the cache ${cache.path}: ${issue.message}`, {
      event: "setup.cache",
      outcome: "failed",
      code: issue.code,
    });
    return {
      status: "failed",
      code: issue.code,
      message: issue.message,
      ...(issue.hint === undefined ? {} : { hint: issue.hint }),
    };
  }
}
