import { readAll } from "@psi/core";
import {
  listMappingIds,
  lookupOnce,
  type OneShotOptions,
  removeMappingOnce,
  secretIdFromEnv,
  storeMappingOnce,
} from "@psi/lookup-server";
import { providerFactory } from "@psi/ops/host";
import type { Command } from "commander";
import type { App } from "../app.js";

/** Driver commands log warnings and errors only, unless asked: Podman runs them per secret. */
function quietLogs(app: App): void {
  const globals = app.globals();
  if (globals.logLevel === undefined && !globals.debug)
    app.setGlobals({ ...globals, logLevel: "warn" });
}

/** Where the one-shot operations keep mappings (state_dir) and log. */
async function oneShot(app: App): Promise<OneShotOptions> {
  const loaded = await app.loadConfig();
  return { stateDir: loaded.paths.stateDir, logger: app.logger() };
}

/** `psi secret store|lookup|delete|list`: Podman's shell driver, one-shot, no serve needed (SPEC §5). */
export function registerSecret(program: Command, app: App): void {
  const secret = program
    .command("secret")
    .description(
      "Podman shell secret driver, one-shot (SECRET_ID from the environment; no psi serve needed)",
    );

  secret
    .command("store")
    .description("write the mapping on stdin to state_dir/$SECRET_ID")
    .action(async () => {
      quietLogs(app);
      const id = secretIdFromEnv(app.env);
      await storeMappingOnce({ ...(await oneShot(app)), id, read: () => readAll(app.io.stdin) });
    });

  secret
    .command("lookup")
    .description("print the plaintext of secret $SECRET_ID (cache, then provider)")
    .action(async () => {
      quietLogs(app);
      const id = secretIdFromEnv(app.env);
      const value = await lookupOnce({ id, context: await app.context(), providerFactory });
      app.io.stdout.write(value);
    });

  secret
    .command("delete")
    .description("remove state_dir/$SECRET_ID (absent is fine)")
    .action(async () => {
      quietLogs(app);
      const id = secretIdFromEnv(app.env);
      removeMappingOnce({ ...(await oneShot(app)), id });
    });

  secret
    .command("list")
    .description("print the secret IDs with a mapping, one per line")
    .action(async () => {
      quietLogs(app);
      const ids = listMappingIds(await oneShot(app));
      if (ids.length > 0) app.io.stdout.write(`${ids.join("\n")}\n`);
    });
}
