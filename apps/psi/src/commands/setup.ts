import { dryRunHostSetup, type HostSetupOptions, runHostSetup } from "@psi/ops";
import {
  type DryRunReport,
  type SetupIssue,
  type SetupProgress,
  type SetupResult,
  setupFailures,
  type WorkloadOutcome,
} from "@psi/setup";
import type { Command } from "commander";
import type { App } from "../app.js";
import { installedSocketOption, podmanSocketOption } from "../options.js";
import {
  columnWidth,
  countList,
  plural,
  progressLine,
  reloadLines,
  statusLine,
  table,
  withHint,
} from "../text.js";

/** Options of `psi setup` (and `psi cache refresh`, which is setup for every provider). */
export interface SetupCommandOptions {
  provider?: string;
  dryRun?: boolean;
  podmanSocket?: string;
  /** PSI's lookup socket the driver options name (`--socket`, as `psi install` takes it). */
  socket?: string;
  allowEmpty?: boolean;
}

/** One progress line on stderr, rewritten in place; only on a terminal. */
function setupProgress(app: App): { update: (p: SetupProgress) => void; done: () => void } {
  return progressLine(
    app.progress(),
    (p: SetupProgress) =>
      `setup: sources ${p.sources.done}/${p.sources.total} · ` +
      `secrets ${p.secrets.done}/${p.secrets.total} · workloads ${p.workloads.done}/${p.workloads.total}`,
    { intervalMs: 80, final: (p) => p.workloads.done === p.workloads.total },
  );
}

/** Runs `psi setup` (or its dry run) through @psi/ops and prints the result; sets the exit code. */
export async function runSetupCommand(app: App, options: SetupCommandOptions): Promise<void> {
  const host: HostSetupOptions = {
    loaded: await app.loadConfig(),
    env: app.env,
    uid: app.uid,
    logger: app.logger(),
    provider: options.provider,
    podmanSocket: options.podmanSocket,
    socket: options.socket,
    openCacheBackend: () => app.openCacheBackend(),
  };
  if (options.dryRun) {
    const report = await dryRunHostSetup(host);
    return app.report(report, () => renderDryRun(report));
  }
  const progress = setupProgress(app);
  try {
    const result = await runHostSetup({
      ...host,
      openProviders: (name) => app.openProviders(name),
      allowEmpty: options.allowEmpty === true,
      onProgress: progress.update,
    });
    progress.done();
    if (!result.ok) app.exitCode = 1;
    app.report(result, () => renderSetup(result));
  } finally {
    progress.done();
  }
}

function issueLine(issue: SetupIssue): string {
  return withHint(issue.message, issue.hint, 6);
}

/** Changed keys (names only) and the restarts they caused, under a workload's line. */
function renderChanges(workload: WorkloadOutcome): string[] {
  const { changes, restarts } = workload;
  if (!changes) return [];
  if (!changes.known) {
    return workload.restartUnit === undefined
      ? []
      : [
          `    cannot tell which values changed (${changes.reason}); ${workload.restartUnit} not restarted`,
        ];
  }
  const keys = [...changes.changed, ...changes.added].sort();
  if (keys.length === 0) return [];
  const lines = [`    changed: ${keys.join(", ")}`];
  for (const restart of restarts ?? []) {
    const what =
      restart.status === "restarted"
        ? "restarted"
        : restart.status === "not-running"
          ? "not running, nothing to restart"
          : `${restart.status.toUpperCase()}: ${restart.detail ?? ""}`;
    lines.push(`    restart ${restart.unit}: ${what}`);
  }
  return lines;
}

/** The human summary of a setup run. */
export function renderSetup(result: SetupResult): string {
  const lines: string[] = [];
  const width = columnWidth(
    result.workloads.map((workload) => workload.name),
    8,
  );
  // The status column fits its longest word, `store-only`.
  const widths = [width, "store-only".length] as const;
  for (const workload of result.workloads) {
    if (workload.status === "store-only") {
      lines.push(statusLine(workload.name, "store-only", workload.note ?? "", widths));
      continue;
    }
    if (workload.status === "failed") {
      lines.push(statusLine(workload.name, "FAILED", undefined, widths));
      for (const issue of workload.errors) {
        const where = issue.secret ?? (issue.source ? JSON.stringify(issue.source) : issue.stage);
        lines.push(`    ${where}: ${issueLine(issue)}`);
      }
      continue;
    }
    const { created, replaced, unchanged } = workload;
    const counts = countList({
      new: created.length,
      "re-created": replaced.length,
      current: unchanged.length,
    });
    const dropIn = workload.dropIn?.written ? "written" : "unchanged";
    const secrets = `${plural(workload.keys.length, "secret")} (${counts}), drop-in ${dropIn}`;
    lines.push(statusLine(workload.name, "ok", secrets, widths));
    lines.push(...renderChanges(workload));
  }
  for (const issue of result.errors) lines.push(`error: ${issueLine(issue)}`);
  if (result.drift.length > 0) {
    lines.push("", `drift: ${plural(result.drift.length, "Podman secret")} not in this fetch:`);
    for (const drift of result.drift) lines.push(`  ${drift.secret}: ${drift.fix}`);
  }
  const cache = result.cache;
  switch (cache.status) {
    case "written":
      lines.push(
        `cache: ${cache.path}: ${plural(cache.entries, "entry")} (` +
          countList({ added: cache.added, updated: cache.updated, pruned: cache.pruned }) +
          `${cache.pruneApplied ? "" : "; partial run, nothing pruned"})`,
      );
      if (cache.previousUnreadable)
        lines.push(
          `  the previous file was unreadable and was replaced: ${cache.previousUnreadable}`,
        );
      break;
    case "unchanged":
    case "skipped":
    case "disabled":
      lines.push(`cache: ${cache.reason}`);
      break;
    case "unavailable":
      lines.push(
        `cache: backend unavailable, not refreshed (container starts will hit the live provider): ${cache.message}`,
      );
      break;
    case "failed":
      lines.push(withHint(`cache: FAILED: ${cache.message}`, cache.hint, 6));
      break;
  }
  lines.push(...reloadLines(result.daemonReload));
  if (result.ok) {
    lines.push(
      `setup done: ${plural(result.workloads.length, "workload")}, ${plural(result.sources.listed, "source")} listed`,
    );
  } else {
    const failed = setupFailures(result);
    const parts = [
      failed.workloads ? plural(failed.workloads, "failed workload") : "",
      failed.drift ? plural(failed.drift, "drifted secret") : "",
      failed.errors ? plural(failed.errors, "error") : "",
      failed.cache ? "cache not written" : "",
      failed.restarts ? plural(failed.restarts, "failed restart") : "",
    ].filter(Boolean);
    lines.push(`setup finished with ${parts.join(", ")}`);
  }
  return lines.join("\n");
}

/** The human table of a dry run. */
export function renderDryRun(report: DryRunReport): string {
  const lines: string[] = [];
  if (report.secrets.length === 0) lines.push("no shell-driver Podman secrets");
  else {
    lines.push(
      ...table([
        ["SECRET", "ID", "CLASS", "WORKLOAD"],
        ...report.secrets.map((secret) => [
          secret.name,
          secret.id,
          secret.class + (secret.differingOptions ? ` (${secret.differingOptions.join(",")})` : ""),
          secret.workload ?? "-",
        ]),
      ]),
    );
  }
  lines.push(
    "",
    countList({
      managed: report.counts.managed,
      "stale-opts (re-run psi setup after psi install)": report.counts.staleOpts,
      [`orphaned (no mapping in ${report.stateDir})`]: report.counts.orphaned,
    }),
  );
  if (report.workloads.length > 0) {
    lines.push(
      "",
      ...table([
        ["WORKLOAD", "DROP-IN", "NOT IN DROP-IN", "NOT IN PODMAN"],
        ...report.workloads.map((workload) => [
          workload.name,
          workload.dropInExists ? "present" : "missing",
          workload.missingFromDropIn.join(",") || "-",
          workload.missingInPodman.join(",") || "-",
        ]),
      ]),
    );
  }
  return lines.join("\n");
}

/** `psi setup [--provider P] [--dry-run] [--podman-socket PATH]` (SPEC §9, §11). */
export function registerSetup(program: Command, app: App): void {
  program
    .command("setup")
    .description(
      "fetch each workload's secrets, register them as Podman secrets, write drop-ins, refresh the cache",
    )
    .option("--provider <name>", "only the workloads of this provider")
    .option(
      "--dry-run",
      "report Podman secrets (managed, stale-opts, orphaned) and drop-in gaps; change nothing",
    )
    .addOption(podmanSocketOption())
    .addOption(installedSocketOption())
    .option(
      "--allow-empty",
      "let a source that lists no secrets remove the workload's existing ones (cache included)",
    )
    .action((options: SetupCommandOptions) => runSetupCommand(app, options));
}
