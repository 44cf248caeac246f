import { collectStatus, type StatusReport, statusReportJson } from "@psi/ops";
import type { Command } from "commander";
import type { App } from "../app.js";
import { podmanSocketOption } from "../options.js";
import { countList, formatAge, hexByte, labelled, plural, withHint, writtenAgo } from "../text.js";

// `psi status` (SPEC §11, §14): @psi/ops collects the report; this file renders it.

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
    const sources = countList(m.lookups.bySource);
    const outcomes = countList({ ok: m.lookups.ok, failed: m.lookups.failed });
    rows.push(["", `lookups: ${m.lookups.total} (${outcomes}${sources ? `; ${sources}` : ""})`]);
    for (const [provider, l] of Object.entries(m.providerLatency)) {
      rows.push(["", `${provider}: ${l.count} live lookups, mean ${l.meanMs} ms`]);
    }
  }
  if (!cache.enabled) {
    rows.push(["cache", "off (every lookup goes to its provider)"]);
  } else {
    const state = cache.state === "ok" ? "ok" : cache.state.replace("-", " ").toUpperCase();
    rows.push(["cache", `${state}  ${cache.path}`]);
    const tag =
      cache.file.tag === undefined
        ? ""
        : `, on disk: ${cache.file.backend ?? "unknown"} (tag ${hexByte(cache.file.tag)})`;
    rows.push(["", `backend: ${cache.backend ?? "(none configured)"}${tag}`]);
    if (!cache.file.exists) {
      rows.push(["", "no file yet (psi setup writes it)"]);
    } else if (cache.file.mtimeMs !== undefined) {
      const limit =
        cache.stale === undefined
          ? "; no workload fetches remotely, so nothing refreshes it"
          : cache.staleAfterSeconds === undefined
            ? ""
            : `, stale after ${formatAge(cache.staleAfterSeconds)}`;
      rows.push([
        "",
        `written ${writtenAgo(cache.file.mtimeMs, cache.ageSeconds ?? 0, `; refresh_interval ${cache.refreshInterval}${limit}`)}`,
      ]);
    }
    if (cache.entries !== undefined) rows.push(["", `${cache.entries} entries loaded by serve`]);
  }
  rows.push([
    "providers",
    report.providers.length === 0
      ? "(none configured)"
      : report.providers.map((p) => `${p.name} (${plural(p.workloads, "workload")})`).join(", "),
  ]);
  if (!drift.reachable) {
    rows.push(["drift", drift.error ?? `Podman API not reachable at ${drift.podmanSocket}`]);
  } else {
    const c = drift.counts ?? { managed: 0, staleOpts: 0, orphaned: 0 };
    const counts = countList({
      managed: c.managed,
      "stale-opts": c.staleOpts,
      orphaned: c.orphaned,
    });
    rows.push(["drift", `${drift.clean ? "clean" : "DRIFT"}  ${counts}`]);
    for (const w of drift.workloads ?? []) {
      rows.push([
        "",
        `${w.name}: ${w.missingFromDropIn} missing from the drop-in, ${w.missingInPodman} missing in Podman`,
      ]);
    }
  }
  const lines = labelled(rows);
  for (const [title, issues] of [
    ["problems", report.problems],
    ["warnings", report.warnings],
  ] as const) {
    if (issues.length === 0) continue;
    lines.push("", `${title}:`);
    for (const i of issues) lines.push(withHint(`  ${i.component}: ${i.message}`, i.hint, 4));
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
    .addOption(podmanSocketOption("for the drift summary"))
    .action(async (options: { socket?: string; podmanSocket?: string }) => {
      const loaded = await app.optionalConfig();
      const report = await collectStatus({
        loaded,
        env: app.env,
        uid: app.uid,
        socket: options.socket,
        podmanSocket: options.podmanSocket,
        context: () => app.context(),
      });
      if (!report.ok) app.exitCode = 1;
      app.report(statusReportJson(report), () => renderStatus(report));
    });
}
