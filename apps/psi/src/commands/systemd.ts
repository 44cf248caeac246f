import { execFile } from "node:child_process";
import { realpathSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { defaultPaths, ensureDir, PsiError, type Scope, writeFileAtomic } from "@psi/core";
import {
  type RenderedFile,
  renderUnits,
  type UnitMode,
  unitSettingsFromConfig,
  unitsToEnable,
} from "@psi/unitgen";
import { type Command, Option } from "commander";
import type { App } from "../app.js";
import { UsageError } from "../errors.js";

interface InstallOptions {
  mode: UnitMode;
  image?: string;
  enable?: boolean;
  outputDir?: string;
  socketActivation?: boolean;
  psiPath?: string;
  nodePath?: string;
}

/** Runs `systemctl [--user] ...`; resolves with the failure instead of throwing. */
function systemctl(
  app: App,
  scope: Scope,
  args: string[],
): Promise<{ ok: boolean; missing: boolean; detail: string }> {
  const argv = [...(scope === "user" ? ["--user"] : []), ...args];
  return new Promise((done) => {
    execFile("systemctl", argv, { env: { ...app.env } }, (error, _stdout, stderr) => {
      if (!error) return done({ ok: true, missing: false, detail: "" });
      const missing = (error as NodeJS.ErrnoException).code === "ENOENT";
      done({ ok: false, missing, detail: (stderr || error.message).trim() });
    });
  });
}

type SystemdResult = { ok: boolean; missing: boolean; detail: string };

/** One `dbus-send` call to systemd's Manager; resolves with the failure instead of throwing. */
function managerCall(
  app: App,
  scope: Scope,
  method: string,
  args: string[],
): Promise<SystemdResult> {
  const argv = [
    scope === "user" ? "--session" : "--system",
    "--print-reply",
    "--dest=org.freedesktop.systemd1",
    "/org/freedesktop/systemd1",
    `org.freedesktop.systemd1.Manager.${method}`,
    ...args,
  ];
  return new Promise((done) => {
    execFile("dbus-send", argv, { env: { ...app.env } }, (error, _stdout, stderr) => {
      if (!error) return done({ ok: true, missing: false, detail: "" });
      const missing = (error as NodeJS.ErrnoException).code === "ENOENT";
      done({ ok: false, missing, detail: (stderr || error.message).trim() });
    });
  });
}

/**
 * `systemctl [--user] daemon-reload | enable --now U... | start U...`; where there is no
 * systemctl (the PSI image), the same through D-Bus with dbus-send over the bus socket
 * the container mounts: Reload, EnableUnitFiles + Reload + StartUnit, StartUnit.
 */
async function systemd(app: App, scope: Scope, args: string[]): Promise<SystemdResult> {
  const viaSystemctl = await systemctl(app, scope, args);
  if (!viaSystemctl.missing) return viaSystemctl;
  const [verb, ...rest] = args;
  const units = rest.filter((arg) => !arg.startsWith("--"));
  const calls: Array<[string, string[]]> =
    verb === "daemon-reload"
      ? [["Reload", []]]
      : [
          ...(verb === "enable"
            ? ([
                [
                  "EnableUnitFiles",
                  [`array:string:${units.join(",")}`, "boolean:false", "boolean:false"],
                ],
                ["Reload", []],
              ] as Array<[string, string[]]>)
            : []),
          ...units.map((unit): [string, string[]] => [
            "StartUnit",
            [`string:${unit}`, "string:replace"],
          ]),
        ];
  for (const [method, callArgs] of calls) {
    const result = await managerCall(app, scope, method, callArgs);
    if (result.missing) {
      return { ok: false, missing: true, detail: "neither systemctl nor dbus-send is installed" };
    }
    if (!result.ok) return result;
  }
  return { ok: true, missing: false, detail: "" };
}

/** The real path of the script Node runs (`dist/cli.js`), resolving a bin symlink. */
function runningScript(): string {
  const script = process.argv[1] ?? "psi";
  try {
    return realpathSync(script);
  } catch {
    return script;
  }
}

/** Where each file goes: quadlets to systemd_dir, plain units to the unit dir (or both under D). */
function destination(file: RenderedFile, dirs: { quadlets: string; units: string }): string {
  return join(file.kind === "quadlet" ? dirs.quadlets : dirs.units, file.path);
}

async function install(app: App, options: InstallOptions): Promise<void> {
  if (options.mode === "container" && !options.image) {
    throw new UsageError("--mode container needs --image IMAGE (the PSI image the quadlets run)");
  }
  if (options.outputDir !== undefined && options.enable) {
    throw new UsageError("--output-dir only writes files; it cannot be combined with --enable");
  }
  const loaded = await app.loadConfig();
  const settings = unitSettingsFromConfig(loaded.config, loaded.paths, loaded.scope, {
    defaultConfigFile: defaultPaths(loaded.scope, app.env, app.uid).config,
  });
  // Native units run Node on the CLI script itself: the bin on PATH may be a symlink
  // (npm), a shell wrapper (the image) or missing under systemd's PATH.
  const psiPath = resolve(options.psiPath ?? runningScript());
  const files = renderUnits(settings, {
    mode: options.mode,
    image: options.image,
    nodePath: resolve(options.nodePath ?? process.execPath),
    psiPath,
    socketActivation: options.socketActivation === true,
  });
  const dirs =
    options.outputDir !== undefined
      ? { quadlets: resolve(options.outputDir), units: resolve(options.outputDir) }
      : { quadlets: settings.systemdDir, units: loaded.paths.unitDir };
  const written: string[] = [];
  for (const dir of new Set(files.map((file) => dirname(destination(file, dirs))))) {
    await ensureDir(dir, 0o755);
  }
  // Native setup writes workload drop-ins here and may not create it under ProtectSystem=strict.
  if (options.outputDir === undefined) await ensureDir(settings.systemdDir, 0o755);
  for (const file of files) {
    const path = destination(file, dirs);
    await writeFileAtomic(path, file.text, { mode: 0o644 });
    written.push(path);
  }
  const report: { files: string[]; reloaded?: boolean; enabled?: string[]; started?: string[] } = {
    files: written,
  };
  if (options.outputDir === undefined) {
    const reload = await systemd(app, loaded.scope, ["daemon-reload"]);
    report.reloaded = reload.ok;
    if (!reload.ok) {
      app
        .logger()
        .warn(
          reload.missing
            ? "neither systemctl nor dbus-send found: run `systemctl daemon-reload` where systemd runs to load the units"
            : `systemctl daemon-reload failed (${reload.detail}); run it once systemd is up to load the units`,
          { event: "systemd.reload_failed" },
        );
    }
    if (options.enable) {
      const { enable, start } = unitsToEnable(files);
      for (const [verb, units] of [
        [["enable", "--now"], enable],
        [["start"], start],
      ] as const) {
        if (units.length === 0) continue;
        const result = await systemd(app, loaded.scope, [...verb, ...units]);
        if (!result.ok) {
          throw new PsiError(
            "systemd.enable_failed",
            `systemctl ${verb.join(" ")} ${units.join(" ")} failed: ${result.detail}`,
            {
              hint: "the files are installed; check `systemctl status` and `journalctl -u psi-secrets.service`",
            },
          );
        }
      }
      report.enabled = enable;
      report.started = start;
    }
  }
  if (app.globals().json) {
    app.printJson(report);
    return;
  }
  for (const path of written) app.print(`wrote ${path}`);
  if (report.enabled?.length) app.print(`enabled and started: ${report.enabled.join(" ")}`);
  if (report.started?.length) app.print(`started: ${report.started.join(" ")}`);
}

/** `psi systemd install` (SPEC §10). */
export function registerSystemd(program: Command, app: App): void {
  // Through program.command() so the group inherits the program's exit and output overrides.
  const systemd = program
    .command("systemd")
    .description("systemd units and Podman quadlets that run PSI");
  systemd
    .command("install")
    .description(
      "write the serve, setup, refresh and TLS units (native) or quadlets (container), daemon-reload, optionally enable",
    )
    .addOption(
      new Option("--mode <mode>", "native: units run this psi; container: quadlets run --image")
        .choices(["native", "container"])
        .makeOptionMandatory(),
    )
    .option("--image <image>", "PSI container image (required with --mode container)")
    .option("--enable", "enable and start serve, setup units and timers after daemon-reload")
    .option(
      "--output-dir <dir>",
      "write every file under DIR and do nothing else (no daemon-reload, no enable)",
    )
    .option(
      "--socket-activation",
      "also write psi-secrets.socket: systemd holds the socket while serve starts",
    )
    .option(
      "--psi-path <path>",
      "psi's cli.js for native ExecStart= (default: the script of the running psi)",
    )
    .option("--node-path <path>", "Node for native ExecStart= (default: the running Node)")
    .action((options: InstallOptions) => install(app, options));
}
