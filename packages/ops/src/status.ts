import { stat } from "node:fs/promises";
import { join } from "node:path";
import { type CacheFileStatus, readCacheStatus } from "@psi/cache";
import type { Env, LoadedConfig, PsiContext, Scope, ScopePaths } from "@psi/core";
import {
  createLogger,
  defaultPaths,
  durationSeconds,
  errorMessage,
  formatAge,
  isPsiError,
  makeContext,
  scopeForUid,
} from "@psi/core";
import { type MetricSample, parsePrometheus, resolveSocketToken } from "@psi/lookup-server";
import { renderDriverConf } from "@psi/unitgen";
import { ageSeconds } from "./cache.js";
import { getOnSocket, lookupSocketPath, socketProblem } from "./socket.js";

// `psi status` (SPEC §11, §14): one look at a host. Everything here is cheap: two requests
// on the lookup socket, the cache file's header and metadata (no backend is opened), the
// configuration, and one listing on the Podman API when its socket is there.

const PODMAN_TIMEOUT_MS = 3_000;

/** Options of {@link collectStatus}: the host's configuration and where to look. */
export interface StatusOptions {
  /** The loaded configuration; undefined when there is none (only the socket is checked). */
  loaded: LoadedConfig | undefined;
  env: Env;
  uid: number;
  /** The lookup socket (default: `PSI_SOCKET`, then the scope's). */
  socket?: string | undefined;
  /** Podman's API socket for the drift summary (default: `PSI_PODMAN_SOCKET`, then the scope's). */
  podmanSocket?: string | undefined;
  /** The context the drift dry run reads; default: one made from `loaded` with no logging. */
  context?: () => Promise<PsiContext>;
  /** The clock for the cache's age, milliseconds. */
  nowMs?: number;
}

/** Something that makes the host unhealthy (exit 1) or is worth a look (exit 0). */
export interface StatusIssue {
  component: "serve" | "cache" | "providers" | "drift";
  code: string;
  message: string;
  hint?: string;
}

/** What serve's `GET /metrics` reported, summed up. */
export interface ServeMetrics {
  lookups: {
    total: number;
    ok: number;
    failed: number;
    bySource: Record<string, number>;
    byOutcome: Record<string, number>;
  };
  cacheEntries: { file: number; memory: number };
  /** Age of the cache file serve has loaded (from its written_at), seconds. */
  cacheAgeSeconds?: number;
  /** Why serve cannot decrypt the cache file on disk (its `psi_cache_degraded` gauge is 1). */
  cacheDegraded?: string;
  /** Provider lookups on cache misses: count and mean latency. */
  providerLatency: Record<string, { count: number; meanMs: number }>;
}

/** The lookup service as `psi status` saw it. */
export interface ServeStatus {
  socket: string;
  running: boolean;
  /** Round trip of `GET /healthz`, milliseconds. */
  healthzMs?: number;
  error?: string;
  /** undefined: not asked (serve down); null: serve exposes no readable /metrics. */
  metrics?: ServeMetrics | null;
  metricsError?: string;
}

/** The cache file: metadata and header only, and the staleness verdict. */
export interface CacheReport {
  enabled: boolean;
  backend: string | undefined;
  path: string;
  file: CacheFileStatus;
  ageSeconds?: number;
  refreshInterval: string;
  staleAfterSeconds: number | undefined;
  /** undefined when staleness does not apply (cache off, nothing fetched remotely). */
  stale: boolean | undefined;
  mismatch: boolean;
  /**
   * The verdict `psi status` leads with, first match wins: off (cache disabled), stale,
   * degraded (serve answers from values it loaded before), unreadable (header from another
   * backend, or a broken file), no-backend, else ok.
   */
  state: "off" | "stale" | "degraded" | "unreadable" | "no-backend" | "ok";
  /** Entries serve holds from the file (from its metrics), when serve answered them. */
  entries?: number;
}

/** One configured provider and how many workloads use it. */
export interface ProviderReport {
  name: string;
  workloads: number;
  fetches: boolean;
}

/** The setup dry run's summary, or why it could not run. */
export interface DriftReport {
  podmanSocket: string;
  reachable: boolean;
  error?: string;
  clean?: boolean;
  counts?: { managed: number; staleOpts: number; orphaned: number };
  workloads?: { name: string; missingFromDropIn: number; missingInPodman: number }[];
}

/** Everything `psi status` reports. */
export interface StatusReport {
  ok: boolean;
  config: string | undefined;
  scope: Scope;
  serve: ServeStatus;
  cache: CacheReport;
  providers: ProviderReport[];
  drift: DriftReport;
  problems: StatusIssue[];
  warnings: StatusIssue[];
}

function summarizeMetrics(samples: MetricSample[]): ServeMetrics {
  const metrics: ServeMetrics = {
    lookups: { total: 0, ok: 0, failed: 0, bySource: {}, byOutcome: {} },
    cacheEntries: { file: 0, memory: 0 },
    providerLatency: {},
  };
  const latency: Record<string, { count: number; sum: number }> = {};
  for (const { name, labels, value } of samples) {
    if (name === "psi_lookups_total") {
      const { source = "none", outcome = "unknown" } = labels;
      metrics.lookups.total += value;
      if (outcome === "ok") metrics.lookups.ok += value;
      else metrics.lookups.failed += value;
      metrics.lookups.bySource[source] = (metrics.lookups.bySource[source] ?? 0) + value;
      metrics.lookups.byOutcome[outcome] = (metrics.lookups.byOutcome[outcome] ?? 0) + value;
    } else if (name === "psi_cache_entries") {
      if (labels["origin"] === "file") metrics.cacheEntries.file = value;
      if (labels["origin"] === "memory") metrics.cacheEntries.memory = value;
    } else if (name === "psi_cache_age_seconds") {
      metrics.cacheAgeSeconds = value;
    } else if (name === "psi_cache_degraded" && value > 0) {
      metrics.cacheDegraded = labels["reason"] ?? "unknown";
    } else if (name.startsWith("psi_provider_lookup_duration_seconds_")) {
      const provider = labels["provider"] ?? "?";
      const entry = latency[provider] ?? { count: 0, sum: 0 };
      latency[provider] = entry;
      if (name.endsWith("_count")) entry.count = value;
      if (name.endsWith("_sum")) entry.sum = value;
    }
  }
  for (const [provider, { count, sum }] of Object.entries(latency)) {
    metrics.providerLatency[provider] = {
      count,
      meanMs: count === 0 ? 0 : Number(((sum / count) * 1000).toFixed(1)),
    };
  }
  return metrics;
}

async function checkServe(socket: string, token: string | undefined): Promise<ServeStatus> {
  const status: ServeStatus = { socket, running: false };
  try {
    const health = await getOnSocket(socket, "/healthz");
    status.healthzMs = Number(health.ms.toFixed(1));
    if (health.status !== 200) {
      status.error = `unhealthy: GET /healthz answered ${health.status}`;
      return status;
    }
    status.running = true;
  } catch (error) {
    status.error = socketProblem(error, socket);
    return status;
  }
  try {
    const answer = await getOnSocket(socket, "/metrics", token);
    if (answer.status === 200) {
      status.metrics = summarizeMetrics(parsePrometheus(answer.body));
    } else {
      status.metrics = null;
      status.metricsError =
        answer.status === 401
          ? "GET /metrics refused this token (401): the socket token here differs from serve's"
          : `GET /metrics answered ${answer.status} (this psi serve has no metrics endpoint)`;
    }
  } catch (error) {
    status.metrics = null;
    status.metricsError = `GET /metrics failed: ${errorMessage(error)}`;
  }
  return status;
}

function fetchesRemotely(provider: string): boolean {
  // Only Infisical is fetched by setup into cache.enc (SPEC §9); the others are store-only.
  return provider === "infisical";
}

function cacheReport(
  loaded: LoadedConfig | undefined,
  paths: ScopePaths,
  file: CacheFileStatus,
  nowMs: number,
  degraded: boolean,
): CacheReport {
  const settings = loaded?.config.cache;
  const enabled = settings?.enabled === true;
  const refreshInterval = settings?.refresh_interval ?? "1h";
  const interval = durationSeconds(refreshInterval);
  const staleAfterSeconds = interval === undefined ? undefined : 2 * interval;
  const fetching = Object.values(loaded?.config.workloads ?? {}).some((w) =>
    fetchesRemotely(w.provider),
  );
  const report: CacheReport = {
    enabled,
    backend: settings?.backend,
    path: settings?.path ?? join(paths.stateDir, "cache.enc"),
    file,
    refreshInterval,
    staleAfterSeconds,
    stale: undefined,
    mismatch:
      settings?.backend !== undefined &&
      file.tag !== undefined &&
      file.backend !== settings.backend,
    state: "ok",
  };
  if (file.mtimeMs !== undefined) {
    report.ageSeconds = ageSeconds(file.mtimeMs, nowMs);
  }
  // Staleness only means something when a refresh is expected: the cache is in use and
  // some workload's values are fetched (and so refreshed by the timer).
  if (enabled && settings?.backend !== undefined && fetching && staleAfterSeconds !== undefined) {
    report.stale = !file.exists || (report.ageSeconds ?? 0) > staleAfterSeconds;
  }
  if (!enabled) report.state = "off";
  else if (report.stale === true) report.state = "stale";
  else if (degraded) report.state = "degraded";
  else if (report.mismatch || file.error) report.state = "unreadable";
  else if (settings?.backend === undefined) report.state = "no-backend";
  return report;
}

function quiet() {
  return createLogger({ level: "silent", stream: { write: () => true } });
}

interface DriftInput {
  loaded: LoadedConfig;
  podmanSocket: string;
  socket: string;
  token: string | undefined;
  tokenError: unknown;
  context: () => Promise<PsiContext>;
}

async function checkDrift(input: DriftInput): Promise<DriftReport> {
  const { loaded, podmanSocket } = input;
  const report: DriftReport = { podmanSocket, reachable: false };
  const unreachable = `Podman API not reachable at ${podmanSocket}`;
  try {
    if (!(await stat(podmanSocket)).isSocket()) {
      report.error = `${unreachable} (not a socket)`;
      return report;
    }
  } catch {
    report.error = unreachable;
    return report;
  }
  try {
    if (input.tokenError !== undefined) throw input.tokenError;
    const [{ createPodmanClient }, { parseDriverOptions, planDryRun }] = await Promise.all([
      import("@psi/podman"),
      import("@psi/setup"),
    ]);
    const podman = createPodmanClient({
      socketPath: podmanSocket,
      scope: loaded.scope,
      timeoutMs: PODMAN_TIMEOUT_MS,
    });
    // What `psi install` writes for this host: drift includes secrets made with other options.
    const expected = parseDriverOptions(
      renderDriverConf({ socket: input.socket, token: input.token }),
    );
    const plan = await planDryRun({
      context: await input.context(),
      podman,
      expectedDriverOptions: expected,
    });
    report.reachable = true;
    report.clean = plan.clean;
    report.counts = plan.counts;
    report.workloads = plan.workloads
      .filter((w) => w.missingFromDropIn.length > 0 || w.missingInPodman.length > 0)
      .map((w) => ({
        name: w.name,
        missingFromDropIn: w.missingFromDropIn.length,
        missingInPodman: w.missingInPodman.length,
      }));
  } catch (error) {
    report.error = isPsiError(error, "podman.unreachable")
      ? `${unreachable}: ${errorMessage(error)}`
      : `dry run failed: ${errorMessage(error)}`;
  }
  return report;
}

function startHint(scope: Scope): string {
  const user = scope === "user" ? "--user " : "";
  return (
    `start it: systemctl ${user}start psi-secrets.service ` +
    "(installed by `psi systemd install`), or run `psi serve`"
  );
}

/**
 * `psi status` as a library: serve's health and metrics, the cache file's age and
 * staleness, providers and the drift summary. Never throws for an unhealthy host.
 */
export async function collectStatus(options: StatusOptions): Promise<StatusReport> {
  const { loaded, env, uid } = options;
  const scope = loaded?.scope ?? scopeForUid(uid);
  const paths = loaded?.paths ?? defaultPaths(scope, env, uid);
  const socket = lookupSocketPath(options.socket, env, paths);
  const podmanSocket = options.podmanSocket || env["PSI_PODMAN_SOCKET"] || paths.podmanSocket;
  // A token that cannot be read still lets health be checked; the drift check reports it.
  let tokenError: unknown;
  const { token } = await resolveSocketToken({
    env,
    configToken: loaded?.config.socket_token,
  }).catch((error: unknown) => {
    tokenError = error;
    return { token: undefined };
  });

  const cachePath = loaded?.config.cache?.path ?? join(paths.stateDir, "cache.enc");
  const [serve, file, drift] = await Promise.all([
    checkServe(socket, token),
    readCacheStatus(cachePath),
    loaded === undefined
      ? Promise.resolve<DriftReport>({
          podmanSocket,
          reachable: false,
          error: "no configuration file: nothing to compare with Podman",
        })
      : checkDrift({
          loaded,
          podmanSocket,
          socket,
          token,
          tokenError,
          context: options.context ?? (async () => makeContext(loaded, { env, logger: quiet() })),
        }),
  ]);
  const degraded = serve.metrics?.cacheDegraded !== undefined;
  const cache = cacheReport(loaded, paths, file, options.nowMs ?? Date.now(), degraded);
  if (serve.metrics) cache.entries = serve.metrics.cacheEntries.file;

  const workloads = Object.values(loaded?.config.workloads ?? {});
  const providers: ProviderReport[] = Object.entries(loaded?.config.providers ?? {})
    .filter(([, block]) => block !== undefined)
    .map(([name]) => ({
      name,
      workloads: workloads.filter((w) => w.provider === name).length,
      fetches: fetchesRemotely(name),
    }));

  const problems: StatusIssue[] = [];
  const warnings: StatusIssue[] = [];
  if (loaded === undefined) {
    warnings.push({
      component: "providers",
      code: "config.missing",
      message: "no configuration file: only the lookup socket was checked",
      hint: "create /etc/psi/config.yaml (user scope: ~/.config/psi/config.yaml) or pass --config",
    });
  }
  if (!serve.running) {
    problems.push({
      component: "serve",
      code: "serve.down",
      message: `psi serve is ${serve.error ?? "not running"}`,
      hint: startHint(scope),
    });
  } else if (serve.metricsError) {
    warnings.push({ component: "serve", code: "serve.metrics", message: serve.metricsError });
  }
  const hex = (n: number) => `0x${n.toString(16).padStart(2, "0")}`;
  if (cache.enabled && cache.backend === undefined) {
    warnings.push({
      component: "cache",
      code: "cache.no_backend",
      message:
        "cache.enabled is true but cache.backend is not set: container starts hit the live providers",
      hint: "set cache.backend (tpm, hsm or keyfile) and run psi cache init",
    });
  }
  if (cache.enabled && file.error) {
    problems.push({
      component: "cache",
      code: file.error.code,
      message: `the cache file is unreadable: ${file.error.message}`,
      hint: "psi setup (or psi cache init) rewrites it",
    });
  } else if (cache.enabled && cache.mismatch) {
    problems.push({
      component: "cache",
      code: "cache.tag_mismatch",
      message: `${cache.path} was written by the ${file.backend ?? "unknown"} backend (tag ${hex(file.tag ?? 0)}) but cache.backend is ${cache.backend}: psi serve cannot read it`,
      hint: `run psi setup (or psi cache init --backend ${cache.backend}) to rewrite it`,
    });
  }
  if (serve.metrics?.cacheDegraded !== undefined) {
    problems.push({
      component: "cache",
      code: "cache.degraded",
      message: "cache.enc on disk cannot be decrypted by the running serve; restart it",
      hint:
        `serve answers from the values it loaded before (${serve.metrics.cacheDegraded}); ` +
        "if a restart does not help, the file was written with another key: psi setup rewrites it",
    });
  }
  if (cache.stale === true) {
    problems.push({
      component: "cache",
      code: "cache.stale",
      message: file.exists
        ? `the cache is stale: last written ${formatAge(cache.ageSeconds ?? 0)} ago, more than 2 × refresh_interval (${cache.refreshInterval})`
        : `the cache is stale: ${cache.path} has never been written`,
      hint:
        "check the refresh timer and the last setup run (systemctl status psi-infisical-refresh.timer " +
        "psi-infisical-setup.service), or run psi setup",
    });
  }
  if (loaded !== undefined) {
    if (!drift.reachable) {
      warnings.push({
        component: "drift",
        code: "drift.unavailable",
        message: drift.error ?? `Podman API not reachable at ${podmanSocket}`,
        hint: "pass --podman-socket PATH (or PSI_PODMAN_SOCKET) to check drift",
      });
    } else if (drift.clean === false) {
      warnings.push({
        component: "drift",
        code: "drift.found",
        message: "Podman secrets and drop-ins differ from what setup manages",
        hint: "details: psi setup --dry-run; fix: psi setup",
      });
    }
  }
  return {
    ok: problems.length === 0,
    config: loaded?.file,
    scope,
    serve,
    cache,
    providers,
    drift,
    problems,
    warnings,
  };
}

/**
 * The report in its machine form, as `psi status --json` prints it: snake_case keys like the
 * log lines, null for what is unknown, the cache file's mode in octal and times in ISO 8601.
 */
export function statusReportJson(report: StatusReport): Record<string, unknown> {
  const { serve, cache, drift } = report;
  const issue = (i: StatusIssue) => ({
    component: i.component,
    code: i.code,
    message: i.message,
    ...(i.hint === undefined ? {} : { hint: i.hint }),
  });
  return {
    ok: report.ok,
    config: report.config ?? null,
    scope: report.scope,
    serve: {
      socket: serve.socket,
      running: serve.running,
      healthz_ms: serve.healthzMs ?? null,
      ...(serve.error === undefined ? {} : { error: serve.error }),
      metrics:
        serve.metrics == null
          ? null
          : {
              lookups: {
                total: serve.metrics.lookups.total,
                ok: serve.metrics.lookups.ok,
                failed: serve.metrics.lookups.failed,
                by_source: serve.metrics.lookups.bySource,
                by_outcome: serve.metrics.lookups.byOutcome,
              },
              cache_entries: serve.metrics.cacheEntries,
              cache_age_seconds: serve.metrics.cacheAgeSeconds ?? null,
              cache_degraded: serve.metrics.cacheDegraded ?? null,
              provider_latency: Object.fromEntries(
                Object.entries(serve.metrics.providerLatency).map(([name, l]) => [
                  name,
                  { count: l.count, mean_ms: l.meanMs },
                ]),
              ),
            },
    },
    cache: {
      enabled: cache.enabled,
      backend: cache.backend ?? null,
      path: cache.path,
      exists: cache.file.exists,
      size: cache.file.size ?? null,
      mode: cache.file.mode === undefined ? null : cache.file.mode.toString(8).padStart(4, "0"),
      last_written:
        cache.file.mtimeMs === undefined ? null : new Date(cache.file.mtimeMs).toISOString(),
      age_seconds: cache.ageSeconds ?? null,
      refresh_interval: cache.refreshInterval,
      stale_after_seconds: cache.staleAfterSeconds ?? null,
      stale: cache.stale ?? null,
      version: cache.file.version ?? null,
      tag: cache.file.tag ?? null,
      tag_backend: cache.file.tag === undefined ? null : (cache.file.backend ?? "unknown"),
      mismatch: cache.mismatch,
      entries: cache.entries ?? null,
      ...(cache.file.error ? { error: cache.file.error } : {}),
    },
    providers: report.providers,
    drift: {
      podman_socket: drift.podmanSocket,
      reachable: drift.reachable,
      ...(drift.error === undefined ? {} : { error: drift.error }),
      ...(drift.reachable
        ? {
            clean: drift.clean,
            counts: {
              managed: drift.counts?.managed ?? 0,
              stale_opts: drift.counts?.staleOpts ?? 0,
              orphaned: drift.counts?.orphaned ?? 0,
            },
            workloads: (drift.workloads ?? []).map((w) => ({
              name: w.name,
              missing_from_drop_in: w.missingFromDropIn,
              missing_in_podman: w.missingInPodman,
            })),
          }
        : {}),
    },
    problems: report.problems.map(issue),
    warnings: report.warnings.map(issue),
  };
}
