import { dirname } from "node:path";
import { ensureDir, writeFileAtomic } from "@psi/core";
import { type DriverInstall, lookupSocketPath, planDriverInstall as planInstall } from "@psi/ops";
import type { Command } from "commander";
import type { App } from "../app.js";
import { optionalConfig } from "../optional-config.js";

export { lookupSocketPath };

/** The driver conf for this run's configuration (or the scope's defaults without one). */
export async function planDriverInstall(
  app: App,
  socketFlag: string | undefined,
): Promise<DriverInstall> {
  return planInstall({
    loaded: await optionalConfig(app),
    env: app.env,
    uid: app.uid,
    socket: socketFlag,
  });
}

/** `psi install [--stdout] [--socket PATH]` (SPEC §5). */
export function registerInstall(program: Command, app: App): void {
  program
    .command("install")
    .description(
      "write containers.conf.d/psi.conf: Podman's shell secret driver calling psi over its socket",
    )
    .option(
      "--stdout",
      "print the file instead of writing it (container mode pipes it to the host)",
    )
    .option(
      "--socket <path>",
      "lookup socket the driver calls (env PSI_SOCKET; default: the scope's socket)",
    )
    .action(async (options: { stdout?: boolean; socket?: string }) => {
      const plan = await planDriverInstall(app, options.socket);
      if (options.stdout) {
        app.io.stdout.write(plan.text);
        return;
      }
      // The file carries the token when there is one: 0600 from creation, else world-readable.
      const mode = plan.mode;
      await ensureDir(dirname(plan.path), 0o755);
      await writeFileAtomic(plan.path, plan.text, { mode });
      if (app.globals().json) {
        app.printJson({
          path: plan.path,
          socket: plan.socket,
          mode: `0${mode.toString(8)}`,
          token: plan.hasToken,
        });
      } else {
        app.print(
          `wrote ${plan.path} (mode 0${mode.toString(8)}${plan.hasToken ? ", with the socket token" : ""}): ` +
            `Podman's shell driver now calls psi on ${plan.socket}`,
        );
      }
    });
}
