import { dirname } from "node:path";
import type { CacheStore } from "@psi/cache";
import type { CacheBackend, Env, Logger, Provider } from "@psi/core";
import { ensureDir, errorMessage, isPsiError, loadConfig } from "@psi/core";
import { checkPrivateDir } from "./dir-check.js";
import type { ListenTarget, LookupServer } from "./server.js";
import { resolveSocketToken } from "./token.js";

// What `psi serve` does around the server, as functions a frontend (the CLI, a test, an
// embedding process) calls: prepare its directories, reload on SIGHUP, close on the way out.

/** Options of {@link prepareServeDirs}. */
export interface ServeDirsOptions {
  stateDir: string;
  /** Where serve listens; a path target's directory is prepared too. */
  target: ListenTarget;
  /** The user serve runs as. */
  uid: number;
  /** `serve.allow_insecure_dirs`: accept directories others could write. */
  allowInsecure?: boolean;
}

/**
 * Creates the socket directory and state_dir (0700) when missing and refuses them when
 * another user could write them (a writable socket directory lets anyone take the socket
 * over), unless `allowInsecure`.
 */
export async function prepareServeDirs(options: ServeDirsOptions): Promise<void> {
  const dirs: [string, string][] = [[options.stateDir, "state_dir"]];
  // Under socket activation systemd made the socket (SocketMode=0600) and its directory.
  if ("path" in options.target) dirs.unshift([dirname(options.target.path), "socket directory"]);
  for (const [dir, what] of dirs) {
    await ensureDir(dir, 0o700);
    if (options.allowInsecure === true) continue;
    await checkPrivateDir(dir, { uid: options.uid, what, override: "serve.allow_insecure_dirs" });
  }
}

/** Options of {@link reloadServe}. */
export interface ReloadServeOptions {
  /** The configuration file serve started with (re-read for its socket_token). */
  configFile: string;
  env: Env;
  uid: number;
  server: LookupServer;
  cache: CacheStore | undefined;
  logger: Logger;
}

/**
 * SIGHUP, as Vault Agent does: re-reads the socket token (credential file, then the
 * configuration file, then PSI_SOCKET_TOKEN) and the cache file. A token that cannot be
 * read keeps the current one; a reload never throws.
 */
export async function reloadServe(options: ReloadServeOptions): Promise<void> {
  const { env, server, cache, logger } = options;
  logger.info("SIGHUP: re-reading the socket token and the cache file", { event: "reload" });
  try {
    const fresh = await loadConfig({ path: options.configFile, env, uid: options.uid });
    const { token, source } = await resolveSocketToken({
      env,
      configToken: fresh.config.socket_token,
    });
    server.setToken(token);
    logger.info(
      token === undefined ? "socket token: none (auth off)" : `socket token from ${source}`,
      {
        event: "reload",
        auth: token !== undefined,
        ...(source === undefined ? {} : { source }),
      },
    );
  } catch (error) {
    logger.warn("SIGHUP: cannot re-read the socket token; keeping the current one", {
      event: "reload",
      error: errorMessage(error),
      ...(isPsiError(error) && error.hint ? { hint: error.hint } : {}),
    });
  }
  if (cache !== undefined) {
    // reload(), not reloadIfChanged(): a hangup re-reads the file even when it looks the same.
    const changed = await cache.reload();
    logger.info(changed ? "cache file re-read" : "cache file unchanged", {
      event: "reload",
      cache_changed: changed,
    });
  }
}

/** Closes every provider and the cache backend; a failure to close is logged, not thrown. */
export async function closeServe(
  providers: ReadonlyMap<string, Provider>,
  backend: CacheBackend | undefined,
  logger: Logger,
): Promise<void> {
  const closing = [...providers.values()].map(async (provider) => {
    try {
      await provider.close();
    } catch (error) {
      logger.warn(`provider ${provider.name} failed to close`, {
        event: "shutdown",
        provider: provider.name,
        error: errorMessage(error),
      });
    }
  });
  await Promise.all(closing);
  try {
    await backend?.close();
  } catch (error) {
    logger.warn("cache backend failed to close", { event: "shutdown", error: errorMessage(error) });
  }
}
