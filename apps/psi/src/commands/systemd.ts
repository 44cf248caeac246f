import { realpathSync } from "node:fs";
import type { UnitMode } from "@psi/unitgen";
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

/** The real path of the script Node runs (`dist/cli.js`), resolving a bin symlink. */
function runningScript(): string {
  const script = process.argv[1] ?? "psi";
  try {
    return realpathSync(script);
  } catch {
    return script;
  }
}

async function install(app: App, options: InstallOptions): Promise<void> {
  if (options.mode === "container" && !options.image) {
    throw new UsageError("--mode container needs --image IMAGE (the PSI image the quadlets run)");
  }
  if (options.outputDir !== undefined && options.enable) {
    throw new UsageError("--output-dir only writes files; it cannot be combined with --enable");
  }
  const { installUnits } = await import("@psi/ops");
  const result = await installUnits({
    ...options,
    loaded: await app.loadConfig(),
    env: app.env,
    uid: app.uid,
    logger: app.logger(),
    // Native units run Node on the CLI script itself: the bin on PATH may be a symlink
    // (npm), a shell wrapper (the image) or missing under systemd's PATH.
    psiPath: options.psiPath ?? runningScript(),
  });
  const { files, reload, enabled, started } = result;
  app.output({ files, ...(reload ? { reloaded: reload.ok } : {}), enabled, started }, () =>
    [
      ...files.map((path) => `wrote ${path}`),
      ...(enabled?.length ? [`enabled and started: ${enabled.join(" ")}`] : []),
      ...(started?.length ? [`started: ${started.join(" ")}`] : []),
    ].join("\n"),
  );
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
