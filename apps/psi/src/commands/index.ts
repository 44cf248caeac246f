import type { Command } from "commander";
import type { App } from "../app.js";

/** A command group adds its subcommands to the program; one file per group. */
export type CommandGroup = (program: Command, app: App) => void;

// Each group lives in its own file (serve.ts, setup.ts, cache.ts, ...) and is listed here
// under the top-level commands it registers. Groups load on demand: `psi cache status`
// never compiles serve, setup, the Infisical commands or the HSM tooling.
const load = {
  serve: async () => (await import("./serve.js")).registerServe,
  setup: async () => (await import("./setup.js")).registerSetup,
  cache: async () => (await import("./cache.js")).registerCache,
  install: async () => (await import("./install.js")).registerInstall,
  secret: async () => (await import("./secret.js")).registerSecret,
  local: async () => (await import("./local.js")).registerLocal,
  systemd: async () => (await import("./systemd.js")).registerSystemd,
  demo: async () => (await import("./demo.js")).registerDemo,
  nitrokeyhsm: async () => (await import("./nitrokeyhsm.js")).registerNitrokeyHsm,
  infisical: async () => (await import("./infisical.js")).registerInfisical,
  status: async () => (await import("./status.js")).registerStatus,
  completion: async () => (await import("./completion.js")).registerCompletion,
} satisfies Record<string, () => Promise<CommandGroup>>;

/**
 * Top-level command name → the group that registers it (setup.ts also adds `refresh`).
 * `completion` is not here: it describes every command, so it gets all groups.
 */
const { completion: _everything, ...single } = load;
const groupOf: Record<string, () => Promise<CommandGroup>> = { ...single, refresh: load.setup };

/** Every command group, in the order `psi --help` lists them. */
export async function allCommandGroups(): Promise<CommandGroup[]> {
  return Promise.all(Object.values(load).map((group) => group()));
}

/** The one group that registers `name`, or undefined for a name no group registers. */
export async function commandGroup(name: string): Promise<CommandGroup | undefined> {
  return groupOf[name]?.();
}
