import type { TimerSchedule } from "@psi/ops";
import type {
  EnvFormat,
  ImportRun,
  InfisicalImportTarget,
  InfisicalTarget,
  LoginCheck,
  TlsResult,
  TlsStatus,
} from "@psi/provider-infisical";
import { type Command, Option } from "commander";
import type { App } from "../app.js";
import { UsageError } from "../errors.js";
import { collect, podmanSocketOption } from "../options.js";
import {
  columnWidth,
  countList,
  failedOf,
  octalMode,
  plural,
  progressLine,
  statusLine,
  table,
  withHint,
} from "../text.js";

// `psi infisical ...` (SPEC §12): argument parsing and output only; the work is done by
// @psi/provider-infisical's operations (and @psi/ops for the imports that read Podman), so
// deployment scripts can run it without the CLI.

/** `--path`, also as the reference's `--secret-path` (write-file). */
type Target = InfisicalTarget & { secretPath?: string };
type ImportFlags = InfisicalImportTarget & { podmanSocket?: string };

// ---------------------------------------------------------------------------- login

function renderLogin(checks: LoginCheck[]): string {
  const rows = checks.map((check) => [
    check.ok ? "ok" : "FAILED",
    check.project ?? "(global auth)",
    `${check.method} (${check.auth})`,
    check.ok
      ? `token valid until ${new Date((check.expiresAt ?? 0) * 1000).toISOString()}`
      : withHint(check.error?.message ?? "failed", check.error?.hint, 4),
  ]);
  const failed = checks.filter((check) => !check.ok).length;
  const summary =
    failed === 0
      ? `logged in: ${plural(checks.length, "project")}`
      : failedOf(failed, checks.length);
  return [...table(rows), summary].join("\n");
}

async function login(app: App): Promise<void> {
  const { infisicalLogin } = await import("@psi/provider-infisical");
  const checks = await infisicalLogin(await app.context());
  if (checks.some((check) => !check.ok)) app.exitCode = 1;
  app.report(checks, () => renderLogin(checks));
}

// ---------------------------------------------------------------------------- env, write-file

async function env(
  app: App,
  options: Target & { format?: EnvFormat; recursive?: boolean },
): Promise<void> {
  const { infisicalEnv } = await import("@psi/provider-infisical");
  const format = options.format ?? (app.globals().json ? "json" : "shell");
  const { text } = await infisicalEnv(await app.context(), { ...options, format });
  app.io.stdout.write(text);
}

async function writeFile(
  app: App,
  key: string,
  file: string,
  options: Target & { mode: string; base64?: boolean },
): Promise<void> {
  const { infisicalWriteFile, parseFileMode } = await import("@psi/provider-infisical");
  const mode = parseFileMode(options.mode);
  const written = await infisicalWriteFile(await app.context(), {
    ...options,
    path: options.secretPath ?? options.path,
    key,
    file,
    mode,
  });
  const modeText = octalMode(mode);
  app.output(
    { key, file: written.file, mode: modeText, bytes: written.bytes },
    () => `wrote ${key} to ${written.file} (${plural(written.bytes, "byte")}, mode ${modeText})`,
  );
}

// ---------------------------------------------------------------------------- import

const VERB: Record<string, [string, string]> = {
  created: ["created", "would create"],
  skipped: ["skipped", "would skip"],
  overwritten: ["overwritten", "would overwrite"],
  failed: ["FAILED", "FAILED"],
  pending_approval: ["pending approval", "would create"],
};

function renderImport(report: ImportRun): string {
  const lines: string[] = [];
  const where = `project ${report.project} (${report.environment}) at ${report.path}`;
  lines.push(
    report.dryRun ? `dry run, nothing written: import into ${where}` : `import into ${where}`,
  );
  for (const folder of report.foldersCreated) {
    lines.push(report.dryRun ? `  would create folder ${folder}` : `  created folder ${folder}`);
  }
  if (report.results.length > 0) {
    lines.push(
      ...table(
        report.results.map((result) => [
          `  ${VERB[result.outcome]![report.dryRun ? 1 : 0]}`,
          result.key,
          [result.source, result.reason].filter(Boolean).join(": "),
        ]),
      ),
    );
  }
  const counts = Object.entries(report.counts)
    .filter(([, count]) => count > 0)
    .map(([outcome, count]) => [outcome.replace("_", " "), count]);
  const total = `${plural(report.results.length, "key")}${report.dryRun ? " (dry run)" : ""}`;
  lines.push(`${total}${counts.length ? `: ${countList(Object.fromEntries(counts))}` : ""}`);
  return lines.join("\n");
}

/**
 * Runs an import with its progress line (`import: done/total` on a terminal) and reports
 * it; any failed key is exit 1.
 */
async function runImport(
  app: App,
  start: (
    context: Awaited<ReturnType<App["context"]>>,
    onProgress: InfisicalImportTarget["onProgress"],
  ) => Promise<ImportRun>,
): Promise<void> {
  const context = await app.context();
  const shown = progressLine(
    app.progress(),
    ({ done, total }: { done: number; total: number }) => `import: ${done}/${total}`,
  );
  let report: ImportRun;
  try {
    report = await start(context, shown.update);
  } finally {
    shown.done();
  }
  if (!report.ok) app.exitCode = 1;
  app.report(report, () => renderImport(report));
}

function importPodmanSecrets(
  app: App,
  positional: string[],
  flags: ImportFlags & { all?: boolean; name?: string[] },
): Promise<void> {
  const names = [...positional, ...(flags.name ?? [])];
  if (flags.all && names.length > 0) throw new UsageError("give secret NAMEs or --all, not both");
  if (!flags.all && names.length === 0)
    throw new UsageError("name the Podman secrets to import, or use --all");
  return runImport(app, async (context, onProgress) => {
    const { importPodmanSecrets } = await import("@psi/ops");
    const openProviders = (only: string) => app.openProviders(only);
    return importPodmanSecrets(context, { ...flags, openProviders, names, onProgress });
  });
}

// ---------------------------------------------------------------------------- tls

function renderTls(results: TlsResult[]): string {
  const lines: string[] = [];
  const width = columnWidth(
    results.map((result) => result.name),
    4,
  );
  // The status column fits `skipped`, `pending`, `renewed` and `FAILED`.
  const widths = [width, 7] as const;
  for (const result of results) {
    const row = (status: string, detail: string) => statusLine(result.name, status, detail, widths);
    if (result.action === "skipped" || result.action === "pending") {
      lines.push(row(result.action, result.reason ?? ""));
      continue;
    }
    const hooks = result.hooks.length
      ? `; hooks: ${result.hooks.filter((hook) => hook.ok).length} of ${result.hooks.length} ok`
      : "";
    if (result.action === "failed") {
      const failure = row("FAILED", result.error?.message ?? result.reason ?? "");
      lines.push(withHint(failure, result.error?.hint, width + 4));
      if (result.serialNumber)
        lines.push(`${" ".repeat(width)}    written: serial ${result.serialNumber}${hooks}`);
      continue;
    }
    const days = plural(result.daysLeft ?? 0, "day");
    const expiry = `serial ${result.serialNumber}, expires ${result.notAfter} (${days} left)`;
    lines.push(row(result.action, `${expiry}${hooks}`));
  }
  const failed = results.filter((result) => result.action === "failed").length;
  if (failed > 0) lines.push(failedOf(failed, results.length, "certificate"));
  return lines.join("\n");
}

function renderTlsStatus(statuses: TlsStatus[]): string {
  return table([
    ["NAME", "COMMON NAME", "EXPIRES", "DAYS LEFT", "RENEW DUE"],
    ...statuses.map((status) => [
      status.name,
      status.commonName,
      status.error
        ? `error: ${status.error}`
        : status.present
          ? (status.notAfter ?? "-")
          : "not issued",
      status.daysLeft === undefined ? "-" : String(status.daysLeft),
      status.renewDue ? "yes" : "no",
    ]),
  ]).join("\n");
}

const NO_CERTIFICATES = "no certificates configured under providers.infisical.tls.certificates";

async function tls(
  app: App,
  verb: "issue" | "renew",
  names: string[],
  force: boolean,
): Promise<void> {
  const { infisicalTls, tlsRunOk } = await import("@psi/provider-infisical");
  const manager = infisicalTls(await app.context());
  if (manager === undefined) return app.output([], () => NO_CERTIFICATES);
  const results =
    verb === "issue" ? await manager.issue(names) : await manager.renew(names, { force });
  if (!tlsRunOk(results)) app.exitCode = 1;
  app.output(results, () => renderTls(results));
}

function renderTimer(timer: string, schedule: TimerSchedule): string {
  const lines = [`timer ${timer}: ${schedule.active}`];
  if (schedule.lastTrigger) lines.push(`  last check: ${schedule.lastTrigger}`);
  if (schedule.nextElapse) lines.push(`  next check: ${schedule.nextElapse}`);
  return lines.join("\n");
}

async function tlsStatus(app: App, names: string[], timer: string): Promise<void> {
  const context = await app.context();
  const { infisicalTls } = await import("@psi/provider-infisical");
  const manager = infisicalTls(context);
  if (!app.reportJson()) {
    const { timerSchedule, timerState } = await import("@psi/ops");
    const info = await timerState({ scope: context.scope, timer, env: app.env });
    if (info) app.print(`${renderTimer(timer, timerSchedule(info))}\n`);
  }
  if (manager === undefined) return app.report([], () => NO_CERTIFICATES);
  const statuses = await manager.status(names);
  if (statuses.some((status) => status.error !== undefined)) app.exitCode = 1;
  app.report(statuses, () => renderTlsStatus(statuses));
}

// ---------------------------------------------------------------------------- registration

function withTarget(command: Command): Command {
  return command
    .requiredOption(
      "--project <name>",
      "configured Infisical project (providers.infisical.projects)",
    )
    .option("--path <path>", "folder in the project", "/")
    .option("--environment <slug>", "another environment than the project's configured one");
}

function withImportFlags(command: Command): Command {
  return withTarget(command)
    .addOption(
      new Option("--conflict <policy>", "what to do with keys that exist at the path")
        .choices(["fail", "skip", "overwrite"])
        .default("fail"),
    )
    .option("--dry-run", "read what exists and report what would happen; write nothing");
}

/** `psi infisical login|env|write-file|import|tls` (SPEC §12). */
export function registerInfisical(program: Command, app: App): void {
  const infisical = program
    .command("infisical")
    .description(
      "Infisical tooling: check logins, print or write secrets, import secrets, TLS certificates",
    );

  infisical
    .command("login")
    .description(
      "log in with every configured auth (global and per project) and report each; exit 1 if any failed",
    )
    .action(async () => login(app));

  withTarget(infisical.command("env"))
    .description(
      "print the secrets of a folder (shell: for eval; env: dotenv lines; json: one object)",
    )
    .addOption(
      new Option(
        "--format <format>",
        "shell (= export, the Python psi's name): export lines for eval; env: KEY=value lines for " +
          "source, EnvironmentFile= and Compose; json (default with --json)",
      ).choices(["shell", "export", "env", "json"]),
    )
    .option("--recursive", "include sub-folders")
    .action(async (options: Target & { format?: EnvFormat; recursive?: boolean }) =>
      env(app, options),
    );

  withTarget(infisical.command("write-file"))
    .description("write one secret's value to FILE, atomically, with the mode set from creation")
    .argument("<key>", "secret key")
    .argument("<file>", "target file")
    .option("--mode <mode>", "octal file mode", "0600")
    .option("--base64", "the secret holds base64: write the decoded bytes")
    .addOption(new Option("--secret-path <path>", "the Python psi's name for --path").hideHelp())
    .action(
      async (key: string, file: string, options: Target & { mode: string; base64?: boolean }) =>
        writeFile(app, key, file, options),
    );

  const imports = infisical
    .command("import")
    .description("import secrets into an Infisical folder (created as needed), reporting each key");

  withImportFlags(imports.command("env-file"))
    .description("import the KEY=value lines of a dotenv file (stdin when FILE is - or omitted)")
    .argument("[file]", "dotenv file; - or nothing reads stdin")
    .action(async (file: string | undefined, flags: ImportFlags) =>
      runImport(app, async (context, onProgress) => {
        const { importEnvFile } = await import("@psi/provider-infisical");
        return importEnvFile(context, { ...flags, file, stdin: app.io.stdin, onProgress });
      }),
    );

  withImportFlags(imports.command("podman-secret"))
    .description(
      "import Podman secrets (file driver, or PSI shell-driver secrets) under their names",
    )
    .argument("[names...]", "Podman secret names")
    .option("--name <name>", "a Podman secret name (repeatable; same as NAME)", collect)
    .option("--all", "every Podman secret")
    .addOption(podmanSocketOption())
    .action(async (names: string[], flags: ImportFlags & { all?: boolean; name?: string[] }) =>
      importPodmanSecrets(app, names, flags),
    );

  withImportFlags(imports.command("quadlet"))
    .description(
      "import the Environment= lines of quadlet .container files (and their Secret= references)",
    )
    .argument("<files...>", "quadlet files")
    .option("--resolve-secrets", "also import Secret= references, read through Podman")
    .addOption(podmanSocketOption())
    .action(async (files: string[], flags: ImportFlags & { resolveSecrets?: boolean }) =>
      runImport(app, async (context, onProgress) => {
        const { importQuadlets } = await import("@psi/ops");
        const openProviders = (only: string) => app.openProviders(only);
        return importQuadlets(context, { ...flags, openProviders, files, onProgress });
      }),
    );

  const tlsCommand = infisical
    .command("tls")
    .description("certificates of providers.infisical.tls.certificates: issue, renew, status");
  tlsCommand
    .command("issue")
    .description("issue new certificates (all, or the NAMEs) and write them; run the hooks")
    .argument("[names...]", "certificate names")
    .action(async (names: string[]) => tls(app, "issue", names, false));
  tlsCommand
    .command("renew")
    .description(
      "renew certificates that expire within renew_before (issue those never issued); run the hooks",
    )
    .argument("[names...]", "certificate names")
    .option("--force", "renew even when not due")
    .action(async (names: string[], options: { force?: boolean }) =>
      tls(app, "renew", names, options.force === true),
    );
  tlsCommand
    .command("status")
    .description("expiry, days left and whether a renewal is due, per certificate")
    .argument("[names...]", "certificate names")
    .option(
      "--timer <unit>",
      "renewal timer whose state is shown first (when systemd answers)",
      "psi-tls-renew.timer",
    )
    .action(async (names: string[], options: { timer: string }) =>
      tlsStatus(app, names, options.timer),
    );
}
