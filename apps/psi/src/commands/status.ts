import { stat } from "node:fs/promises";
import { createRequire } from "node:module";
import { join } from "node:path";
import { type CacheFileStatus, readCacheStatus } from "@psi/cache";
import type { LoadedConfig, Scope, ScopePaths } from "@psi/core";
import { defaultPaths, durationSeconds, errorMessage, isPsiError, scopeForUid } from "@psi/core";
import { resolveSocketToken } from "@psi/lookup-server";
import type { Command } from "commander";
import type { App } from "../app.js";
import { lookupSocketPath, planDriverInstall } from "./install.js";

// Node 24's ESM facade for node:http reads every export, and three of them are getters
// that load undici (~30 ms on every psi start); require() keeps them lazy.
const { request } = createRequire(import.meta.url)("node:http") as typeof import("node:http");

// `psi status` (SPEC §11, §14): one look at a host. Everything here is cheap: two requests
// on the lookup socket, the cache file's header and metadata (no backend is opened), the
// configuration, and one listing on the Podman API when its socket is there.

const SOCKET_TIMEOUT_MS = 2_000;
const PODMAN_TIMEOUT_MS = 3_000;

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

interface SocketAnswer {
  status: number;
  body: string;
  ms: number;
}

/** One GET on the lookup socket (bounded by a short timeout). */
export function getOnSocket(
  socketPath: string,
  path: string,
  token?: string,
): Promise<SocketAnswer> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const req = request(
      {
        socketPath,
        path,
        method: "GET",
        agent: false,
        headers: token === undefined ? {} : { Authorization: `Bearer ${token}` },
        signal: AbortSignal.timeout(SOCKET_TIMEOUT_MS),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("error", reject);
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            body: Buffer.concat(chunks).toString("utf8"),
            ms: performance.now() - started,
          }),
        );
      },
    );
    req.on("error", reject);
    req.end();
  });
}

function socketProblem(error: unknown, socket: string): string {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === "ENOENT") return `not running (no socket at ${socket})`;
  if (code === "ECONNREFUSED")
    return `not running (nothing listens on ${socket}; a stale socket file?)`;
  if (code === "EACCES")
    return `no permission to connect to ${socket} (run as the user that runs psi serve)`;
  if ((error as Error).name === "AbortError" || (error as Error).name === "TimeoutError") {
    return `not answering on ${socket} within ${SOCKET_TIMEOUT_MS} ms`;
  }
  return `cannot reach ${socket}: ${errorMessage(error)}`;
}

type Sample = { name: string; labels: Record<string, string>; value: number };

/** Prometheus text format 0.0.4, the subset serve writes: `name{a="b",...} value`. */
export function parsePrometheus(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!match) continue;
    const labels: Record<string, string> = {};
    for (const pair of (match[2] ?? "").matchAll(/([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[pair[1] as string] = (pair[2] as string).replace(/\\(.)/g, (_, c: string) =>
        c === "n" ? "\n" : c,
      );
    }
    const value = Number(match[3]);
    if (Number.isFinite(value)) samples.push({ name: match[1] as string, labels, value });
  }
  return samples;
}

function summarizeMetrics(samples: Sample[]): ServeMetrics {
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
  };
  if (file.mtimeMs !== undefined) {
    report.ageSeconds = Math.max(0, Math.round((nowMs - file.mtimeMs) / 1000));
  }
  // Staleness only means something when a refresh is expected: the cache is in use and
  // some workload's values are fetched (and so refreshed by the timer).
  if (enabled && settings?.backend !== undefined && fetching && staleAfterSeconds !== undefined) {
    report.stale = !file.exists || (report.ageSeconds ?? 0) > staleAfterSeconds;
  }
  return report;
}

async function checkDrift(
  app: App,
  loaded: LoadedConfig,
  podmanSocket: string,
  socketFlag: string | undefined,
): Promise<DriftReport> {
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
    const [{ createPodmanClient }, { parseDriverOptions, planDryRun }] = await Promise.all([
      import("@psi/podman"),
      import("@psi/setup"),
    ]);
    const podman = createPodmanClient({
      socketPath: podmanSocket,
      scope: loaded.scope,
      timeoutMs: PODMAN_TIMEOUT_MS,
    });
    const expected = parseDriverOptions((await planDriverInstall(app, socketFlag)).text);
    const plan = await planDryRun({
      context: await app.context(),
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

function ago(seconds: number): string {
  if (seconds < 90) return `${seconds}s`;
  const minutes = Math.round(seconds / 60);
  if (minutes < 90) return `${minutes}min`;
  const hours = Math.round(minutes / 60);
  if (hours < 48) return `${hours}h`;
  return `${Math.round(hours / 24)}d`;
}

/** Collects the report; never throws for an unhealthy host (only for a broken config). */
export async function collectStatus(
  app: App,
  options: { socket?: string | undefined; podmanSocket?: string | undefined },
): Promise<StatusReport> {
  let loaded: LoadedConfig | undefined;
  try {
    loaded = await app.loadConfig();
  } catch (error) {
    if (!isPsiError(error, "config.missing")) throw error;
  }
  const scope = loaded?.scope ?? scopeForUid(app.uid);
  const paths = loaded?.paths ?? defaultPaths(scope, app.env, app.uid);
  const socket = lookupSocketPath(options.socket, app.env, paths);
  const podmanSocket = options.podmanSocket || app.env["PSI_PODMAN_SOCKET"] || paths.podmanSocket;
  const { token } = await resolveSocketToken({
    env: app.env,
    configToken: loaded?.config.socket_token,
  }).catch(() => ({ token: undefined }));

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
      : checkDrift(app, loaded, podmanSocket, options.socket),
  ]);
  const cache = cacheReport(loaded, paths, file, Date.now());
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
        ? `the cache is stale: last written ${ago(cache.ageSeconds ?? 0)} ago, more than 2 × refresh_interval (${cache.refreshInterval})`
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

/** The report as JSON (snake_case, like the other commands' machine output). */
export function statusJson(report: StatusReport): Record<string, unknown> {
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

/** The report as a table for a terminal. */
export function renderStatus(report: StatusReport): string {
  const { serve, cache, drift } = report;
  const rows: [string, string][] = [];
  rows.push(["config", report.config ?? "(no configuration file)"]);
  rows.push([
    "serve",
    serve.running
      ? `ok  ${serve.socket} (healthz ${serve.healthzMs} ms)`
      : `DOWN  ${serve.error ?? "not running"}`,
  ]);
  if (serve.metrics) {
    const m = serve.metrics;
    const sources = Object.entries(m.lookups.bySource)
      .map(([source, n]) => `${n} ${source}`)
      .join(", ");
    rows.push([
      "",
      `lookups: ${m.lookups.total} (${m.lookups.ok} ok, ${m.lookups.failed} failed${sources ? `; ${sources}` : ""})`,
    ]);
    for (const [provider, l] of Object.entries(m.providerLatency)) {
      rows.push(["", `${provider}: ${l.count} live lookups, mean ${l.meanMs} ms`]);
    }
  }
  if (!cache.enabled) {
    rows.push(["cache", "off (every lookup goes to its provider)"]);
  } else {
    const state =
      cache.stale === true
        ? "STALE"
        : serve.metrics?.cacheDegraded !== undefined
          ? "DEGRADED"
          : cache.mismatch || cache.file.error
            ? "UNREADABLE"
            : cache.backend === undefined
              ? "NO BACKEND"
              : "ok";
    rows.push(["cache", `${state}  ${cache.path}`]);
    const tag =
      cache.file.tag === undefined
        ? ""
        : `, on disk: ${cache.file.backend ?? "unknown"} (tag 0x${cache.file.tag.toString(16).padStart(2, "0")})`;
    rows.push(["", `backend: ${cache.backend ?? "(none configured)"}${tag}`]);
    if (!cache.file.exists) {
      rows.push(["", "no file yet (psi setup writes it)"]);
    } else if (cache.file.mtimeMs !== undefined) {
      const limit =
        cache.stale === undefined
          ? "; no workload fetches remotely, so nothing refreshes it"
          : cache.staleAfterSeconds === undefined
            ? ""
            : `, stale after ${ago(cache.staleAfterSeconds)}`;
      rows.push([
        "",
        `written ${new Date(cache.file.mtimeMs).toISOString()} (${ago(cache.ageSeconds ?? 0)} ago; refresh_interval ${cache.refreshInterval}${limit})`,
      ]);
    }
    if (cache.entries !== undefined) rows.push(["", `${cache.entries} entries loaded by serve`]);
  }
  rows.push([
    "providers",
    report.providers.length === 0
      ? "(none configured)"
      : report.providers
          .map((p) => `${p.name} (${p.workloads} workload${p.workloads === 1 ? "" : "s"})`)
          .join(", "),
  ]);
  if (!drift.reachable) {
    rows.push(["drift", drift.error ?? `Podman API not reachable at ${drift.podmanSocket}`]);
  } else {
    const c = drift.counts ?? { managed: 0, staleOpts: 0, orphaned: 0 };
    rows.push([
      "drift",
      `${drift.clean ? "clean" : "DRIFT"}  ${c.managed} managed, ${c.staleOpts} stale-opts, ${c.orphaned} orphaned`,
    ]);
    for (const w of drift.workloads ?? []) {
      rows.push([
        "",
        `${w.name}: ${w.missingFromDropIn} missing from the drop-in, ${w.missingInPodman} missing in Podman`,
      ]);
    }
  }
  const width = Math.max(...rows.map(([label]) => label.length));
  const lines = rows.map(([label, value]) => `${label.padEnd(width)}  ${value}`);
  for (const [title, issues] of [
    ["problems", report.problems],
    ["warnings", report.warnings],
  ] as const) {
    if (issues.length === 0) continue;
    lines.push("", `${title}:`);
    for (const i of issues) {
      lines.push(`  ${i.component}: ${i.message}`);
      if (i.hint) lines.push(`    hint: ${i.hint}`);
    }
  }
  lines.push(
    "",
    report.ok ? "healthy" : `unhealthy: ${report.problems.map((p) => p.code).join(", ")}`,
  );
  return lines.join("\n");
}

/** `psi status [--socket PATH] [--podman-socket PATH] [--json]` (SPEC §11, §14). */
export function registerStatus(program: Command, app: App): void {
  program
    .command("status")
    .description(
      "serve health, cache age and staleness, providers, drift summary (exit 1: serve down or cache stale)",
    )
    .option("--socket <path>", "the lookup socket (env PSI_SOCKET; default: the scope's)")
    .option(
      "--podman-socket <path>",
      "Podman API socket for the drift summary (env PSI_PODMAN_SOCKET; default: the scope's)",
    )
    .action(async (options: { socket?: string; podmanSocket?: string }) => {
      const report = await collectStatus(app, options);
      if (!report.ok) app.exitCode = 1;
      if (app.globals().json === true || app.io.stdout.isTTY !== true) {
        app.printJson(statusJson(report));
      } else {
        app.print(renderStatus(report));
      }
    });
}
