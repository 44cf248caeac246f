import { type DriverInstallOptions, installDriverConf, planDriverInstall } from "@psi/ops";
import type { Command } from "commander";
import type { App } from "../app.js";
import { octalMode } from "../text.js";

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
      const request: DriverInstallOptions = {
        loaded: await app.optionalConfig(),
        env: app.env,
        uid: app.uid,
        socket: options.socket,
      };
      if (options.stdout) {
        app.io.stdout.write((await planDriverInstall(request)).text);
        return;
      }
      const plan = await installDriverConf(request);
      const mode = octalMode(plan.mode);
      app.output(
        { path: plan.path, socket: plan.socket, mode, token: plan.hasToken },
        () =>
          `wrote ${plan.path} (mode ${mode}${plan.hasToken ? ", with the socket token" : ""}): ` +
          `Podman's shell driver now calls psi on ${plan.socket}`,
      );
    });
}
