import { dirname, join } from "node:path";
import type { ScopePaths } from "@psi/core";
import { defaultPaths, ensureDir, isPsiError, scopeForUid, writeFileAtomic } from "@psi/core";
import { resolveSocketToken } from "@psi/lookup-server";
import { lookupSocketPath } from "@psi/ops";
import { DRIVER_CONF_NAME, driverConfMode, renderDriverConf } from "@psi/unitgen";
import type { Command } from "commander";
import type { App } from "../app.js";

export { lookupSocketPath };

/** What `psi install` renders: the driver conf text and where it goes. */
export interface DriverInstall {
  text: string;
  path: string;
  socket: string;
  hasToken: boolean;
  /** 0600 when the text holds a token, else 0644. */
  mode: number;
}

/**
 * Renders containers.conf.d/psi.conf for this host: the lookup socket and, when one is
 * configured (SPEC §4.2), the bearer token. Without a configuration file the scope's
 * defaults and the environment's token are used, so the conf can be made before setup.
 */
export async function planDriverInstall(
  app: App,
  socketFlag: string | undefined,
): Promise<DriverInstall> {
  let paths: ScopePaths;
  let configToken: string | undefined;
  try {
    const loaded = await app.loadConfig();
    paths = loaded.paths;
    configToken = loaded.config.socket_token;
  } catch (error) {
    if (!isPsiError(error, "config.missing")) throw error;
    paths = defaultPaths(scopeForUid(app.uid), app.env, app.uid);
  }
  const { token } = await resolveSocketToken({ env: app.env, configToken });
  const socket = lookupSocketPath(socketFlag, app.env, paths);
  return {
    text: renderDriverConf({ socket, token }),
    path: join(paths.containersConfDir, DRIVER_CONF_NAME),
    socket,
    hasToken: token !== undefined,
    mode: driverConfMode({ token }),
  };
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
