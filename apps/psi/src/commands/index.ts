import type { Command } from "commander";
import type { App } from "../app.js";
import { registerCache } from "./cache.js";
import { registerCompletion } from "./completion.js";
import { registerDemo } from "./demo.js";
import { registerInfisical } from "./infisical.js";
import { registerInstall } from "./install.js";
import { registerLocal } from "./local.js";
import { registerNitrokeyHsm } from "./nitrokeyhsm.js";
import { registerSecret } from "./secret.js";
import { registerServe } from "./serve.js";
import { registerSetup } from "./setup.js";
import { registerStatus } from "./status.js";
import { registerSystemd } from "./systemd.js";

/** A command group adds its subcommands to the program; one file per group. */
export type CommandGroup = (program: Command, app: App) => void;

// Each group lives in its own file (serve.ts, setup.ts, cache.ts, ...) and is listed here.
export const commandGroups: CommandGroup[] = [
  registerServe,
  registerSetup,
  registerCache,
  registerInstall,
  registerSecret,
  registerLocal,
  registerSystemd,
  registerDemo,
  registerNitrokeyHsm,
  registerInfisical,
  registerStatus,
  registerCompletion,
];
