import { readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { Env, LoadedConfig } from "@psi/core";
import { defaultPaths, ensureDir, scopeForUid, writeFileAtomic } from "@psi/core";
import { resolveSocketToken } from "@psi/lookup-server";
import { DRIVER_CONF_NAME, driverConfMode, renderDriverConf } from "@psi/unitgen";
import { lookupSocketPath } from "./socket.js";

// Podman's shell-driver configuration (containers.conf.d/psi.conf, SPEC §5): what `psi
// install` writes, and the driver options a secret created by setup gets.

/** What `psi install` renders: the driver conf text and where it goes. */
export interface DriverInstall {
  text: string;
  path: string;
  socket: string;
  hasToken: boolean;
  /** 0600 when the text holds a token, else 0644. */
  mode: number;
}

/** Options of {@link planDriverInstall}. */
export interface DriverInstallOptions {
  /** The configuration; undefined without one (the scope's defaults and env's token). */
  loaded: LoadedConfig | undefined;
  env: Env;
  uid: number;
  /** The lookup socket to name (default: `PSI_SOCKET`, then the scope's). */
  socket?: string | undefined;
}

/**
 * Renders containers.conf.d/psi.conf for this host: the lookup socket and, when one is
 * configured (SPEC §4.2), the bearer token. Without a configuration file the scope's
 * defaults and the environment's token are used, so the conf can be made before setup.
 */
export async function planDriverInstall(options: DriverInstallOptions): Promise<DriverInstall> {
  const { loaded, env, uid } = options;
  const paths = loaded?.paths ?? defaultPaths(scopeForUid(uid), env, uid);
  const { token } = await resolveSocketToken({ env, configToken: loaded?.config.socket_token });
  const socket = lookupSocketPath(options.socket, env, paths);
  return {
    text: renderDriverConf({ socket, token }),
    path: join(paths.containersConfDir, DRIVER_CONF_NAME),
    socket,
    hasToken: token !== undefined,
    mode: driverConfMode({ token }),
  };
}

/**
 * `psi install`: writes the driver conf {@link planDriverInstall} renders, atomically and
 * at its mode from creation (0600 when it carries the socket token, else 0644).
 */
export async function installDriverConf(options: DriverInstallOptions): Promise<DriverInstall> {
  const plan = await planDriverInstall(options);
  await ensureDir(dirname(plan.path), 0o755);
  await writeFileAtomic(plan.path, plan.text, { mode: plan.mode });
  return plan;
}

/**
 * The driver options a secret created now gets: with an explicit socket (or `PSI_SOCKET`),
 * what `psi install` writes for it; otherwise what Podman holds, the installed psi.conf
 * (so a socket set once through `install --socket` does not make every setup re-create
 * every secret); without that file, what `psi install` would write.
 */
export async function expectedDriverOptions(
  options: DriverInstallOptions,
): Promise<Record<string, string>> {
  const { parseDriverOptions } = await import("@psi/setup");
  const plan = await planDriverInstall(options);
  if (options.socket === undefined && !options.env["PSI_SOCKET"]) {
    const installed = await readFile(plan.path, "utf8").then(parseDriverOptions, (error) => {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw error;
    });
    if (installed && Object.keys(installed).length > 0) return installed;
  }
  return parseDriverOptions(plan.text);
}
