import { dirname, join, resolve } from "node:path";
import type { Env, LoadedConfig, Logger } from "@psi/core";
import { defaultPaths, ensureDir, PsiError, writeFileAtomic } from "@psi/core";
import {
  type RenderedFile,
  renderUnits,
  type UnitMode,
  unitSettingsFromConfig,
  unitsToEnable,
} from "@psi/unitgen";
import { requestSystemd, type SystemdRequest } from "./systemd.js";

// `psi systemd install` as a library (SPEC §10): render the units or quadlets for this
// configuration, write each where systemd looks for it, daemon-reload, optionally enable.

/** Options of {@link installUnits}. */
export interface InstallUnitsOptions {
  loaded: LoadedConfig;
  env: Env;
  uid: number;
  logger: Logger;
  /** native: units run Node on psi's cli.js; container: quadlets run `image`. */
  mode: UnitMode;
  /** The PSI image (required in container mode). */
  image?: string | undefined;
  /** psi's cli.js for native `ExecStart=` (made absolute against the working directory). */
  psiPath: string;
  /** Node for native `ExecStart=` (default: the running Node). */
  nodePath?: string | undefined;
  /** Also write psi-secrets.socket (systemd holds the socket while serve starts). */
  socketActivation?: boolean | undefined;
  /** Write every file under this directory and do nothing else (no reload, no enable). */
  outputDir?: string | undefined;
  /** Enable and start serve, the setup units and the timers after daemon-reload. */
  enable?: boolean | undefined;
}

/** What {@link installUnits} wrote and asked systemd to do. */
export interface UnitsInstall {
  /** Every file written, in render order. */
  files: string[];
  /** The daemon-reload (absent with `outputDir`); a failure was logged as a warning. */
  reload?: SystemdRequest;
  /** Units enabled and started (`enable --now`), with `enable`. */
  enabled?: string[];
  /** Quadlet services started (systemd refuses to enable generated units), with `enable`. */
  started?: string[];
}

/** Where each file goes: quadlets to systemd_dir, plain units to the unit dir (or both under D). */
function destination(file: RenderedFile, dirs: { quadlets: string; units: string }): string {
  return join(file.kind === "quadlet" ? dirs.quadlets : dirs.units, file.path);
}

/**
 * Renders the serve, setup, refresh and TLS units (native) or quadlets (container), writes
 * them atomically (0644), then reloads systemd and, with `enable`, enables and starts
 * them. An unreachable systemd is a warning (the files are in place); a failed enable
 * throws `systemd.enable_failed`.
 */
export async function installUnits(options: InstallUnitsOptions): Promise<UnitsInstall> {
  const { loaded, outputDir } = options;
  if (outputDir !== undefined && options.enable) {
    throw new PsiError(
      "systemd.output_dir_enable",
      "outputDir only writes files; enable needs systemd",
      {
        hint: "install into systemd's directories (no outputDir) to enable the units",
      },
    );
  }
  const settings = unitSettingsFromConfig(loaded.config, loaded.paths, loaded.scope, {
    defaultConfigFile: defaultPaths(loaded.scope, options.env, options.uid).config,
  });
  const files = renderUnits(settings, {
    mode: options.mode,
    image: options.image,
    nodePath: resolve(options.nodePath ?? process.execPath),
    psiPath: resolve(options.psiPath),
    socketActivation: options.socketActivation === true,
  });
  const dirs =
    outputDir !== undefined
      ? { quadlets: resolve(outputDir), units: resolve(outputDir) }
      : { quadlets: settings.systemdDir, units: loaded.paths.unitDir };
  for (const dir of new Set(files.map((file) => dirname(destination(file, dirs))))) {
    await ensureDir(dir, 0o755);
  }
  // Native setup writes workload drop-ins here and may not create it under ProtectSystem=strict.
  if (outputDir === undefined) await ensureDir(settings.systemdDir, 0o755);
  const written: string[] = [];
  for (const file of files) {
    const path = destination(file, dirs);
    await writeFileAtomic(path, file.text, { mode: 0o644 });
    written.push(path);
  }
  if (outputDir !== undefined) return { files: written };
  const systemd = (args: string[]) =>
    requestSystemd({ scope: loaded.scope, env: options.env, args });
  const reload = await systemd(["daemon-reload"]);
  if (!reload.ok) {
    options.logger.warn(
      reload.missing
        ? "neither systemctl nor dbus-send found: run `systemctl daemon-reload` where systemd runs to load the units"
        : `systemctl daemon-reload failed (${reload.detail}); run it once systemd is up to load the units`,
      { event: "systemd.reload_failed" },
    );
  }
  if (!options.enable) return { files: written, reload };
  const { enable, start } = unitsToEnable(files);
  for (const [verb, units] of [
    [["enable", "--now"], enable],
    [["start"], start],
  ] as const) {
    if (units.length === 0) continue;
    const result = await systemd([...verb, ...units]);
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
  return { files: written, reload, enabled: enable, started: start };
}
