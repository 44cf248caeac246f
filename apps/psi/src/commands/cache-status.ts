import { type CacheLocations, cacheLocations, cacheStatus, cacheStatusJson } from "@psi/ops/cache";
import type { App } from "../app.js";
import { hexByte, labelled, plural, writtenAgo } from "../text.js";

// `psi cache status` on its own, without commander: a hot command (plain.ts runs it
// directly), so this file loads only @psi/ops's cache operations.

/** The cache's locations from the configuration, or the scope's defaults without one. */
export async function locations(app: App): Promise<CacheLocations> {
  return cacheLocations(await app.optionalConfig(), { env: app.env, uid: app.uid });
}

/** `psi cache status [--verify]`: the report, rendered or as JSON; exit 1 when not ok. */
export async function runCacheStatus(app: App, options: { verify?: boolean }): Promise<void> {
  const where = await locations(app);
  const report = await cacheStatus(where, options.verify ? () => app.cacheBackend() : undefined);
  if (!report.ok) app.exitCode = 1;
  app.report(cacheStatusJson(report), () => renderCacheStatus(where, report));
}

function renderCacheStatus(
  where: CacheLocations,
  report: Awaited<ReturnType<typeof cacheStatus>>,
): string {
  const { file, verify, tagBackend } = report;
  const configured = where.configuredBackend;
  const lines: [string, string][] = [
    ["path", where.cachePath],
    ["config", where.configFile ?? "(no configuration file)"],
    ["enabled", where.enabled ? "yes" : "no"],
    ["backend", configured ?? "(none configured)"],
  ];
  if (!file.exists) {
    lines.push([
      "file",
      "does not exist (psi setup writes it; psi cache init creates an empty one)",
    ]);
  } else {
    if (file.size !== undefined) lines.push(["size", `${file.size} bytes`]);
    if (file.mtimeMs !== undefined) {
      lines.push(["last written", writtenAgo(file.mtimeMs, report.ageSeconds ?? 0)]);
    }
    if (file.version !== undefined && file.tag !== undefined) {
      lines.push([
        "format",
        `PSIC version ${file.version}, tag ${hexByte(file.tag)} (${tagBackend})`,
      ]);
    }
    if (file.error) lines.push(["error", `${file.error.message}`]);
  }
  if (verify) {
    lines.push([
      "verify",
      verify.ok
        ? `ok: ${plural(verify.entries ?? 0, "entry")}, written_at ${verify.written_at}${verify.legacy ? " (legacy version 1 payload: loads empty)" : ""}`
        : `FAILED: ${verify.error?.message}`,
    ]);
    if (!verify.ok && verify.error?.hint) lines.push(["", `hint: ${verify.error.hint}`]);
  }
  const out = labelled(lines);
  if (report.mismatch) {
    out.push(
      `warning: the file was written by the ${tagBackend} backend (tag ${hexByte(file.tag ?? 0)}), but cache.backend is ${configured}: ` +
        `psi serve cannot read it. Run \`psi cache init --backend ${configured}\` (or psi setup) to rewrite it, ` +
        `or set cache.backend: ${tagBackend} in ${where.configFile}`,
    );
  }
  return out.join("\n");
}
