import { resolve } from "node:path";
import { openServeCache, type ServeCache } from "@psi/cache";
import type { CacheBackend, Env, LoadedConfig, Logger, Provider } from "@psi/core";
import { cachePath } from "@psi/core";
import { socketActivation } from "./activation.js";
import { type HardenResult, hardenProcess, swapExposure } from "./harden.js";
import { closeServe, prepareServeDirs, reloadServe } from "./lifecycle.js";
import { createLookupServer, type ListenTarget, type LookupServer } from "./server.js";
import { resolveSocketToken } from "./token.js";

// `psi serve` from configuration to a listening socket, as one function: a frontend wires
// process signals to the handle (stop → close, SIGHUP → reload) and nothing else.

/** Options of {@link startServe}. */
export interface StartServeOptions {
  /** Loads the configuration; called after hardening has started (nothing secret is in memory yet). */
  loadConfig: () => Promise<LoadedConfig>;
  env: Env;
  uid: number;
  logger: Logger;
  /** `--socket`; then `PSI_SOCKET`, then the scope's socket. Ignored under socket activation. */
  socket?: string | undefined;
  /** This process's id, to tell systemd's socket activation is for it (default `process.pid`). */
  pid?: number;
  /** Opens every configured provider (one that fails is logged and left out). */
  openProviders: () => Promise<Map<string, Provider>>;
  /** Opens the configured cache backend (one shared instance); undefined when none is configured. */
  openCacheBackend: () => Promise<CacheBackend | undefined>;
  /** Aborted (reason: the signal's name) when a stop is asked for during startup. */
  signal?: AbortSignal;
}

/** A running serve: the server, a reload (SIGHUP) and a close that releases everything. */
export interface ServeHandle {
  server: LookupServer;
  /** Re-reads the socket token and the cache file; never throws. */
  reload(): Promise<void>;
  /** Finishes requests in flight, stops, closes the cache, providers and backend; `reason` is logged. */
  close(reason: string): Promise<void>;
}

/** The cache as serve opens it (@psi/cache's openServeCache) for `loaded`, with `openBackend`. */
export function openConfiguredServeCache(
  loaded: LoadedConfig,
  logger: Logger,
  openBackend: () => Promise<CacheBackend | undefined>,
): Promise<ServeCache> {
  return openServeCache({
    settings: loaded.config.cache,
    path: cachePath(loaded),
    logger,
    openBackend,
  });
}

/** Logs what hardening achieved; failing to harden is a warning, not a crash (SPEC §13). */
function reportHardening(result: HardenResult, logger: Logger): void {
  if (result.problems.length === 0) {
    logger.debug("process hardened: not dumpable, no core dumps", { event: "harden" });
    return;
  }
  logger.warn(`process hardening incomplete: ${result.problems.join("; ")}`, {
    event: "harden",
    non_dumpable: result.nonDumpable,
    no_core_dumps: result.noCoreDumps,
  });
}

/** The providers and the cache serve answers from, with the backend to close at exit. */
interface ServeBackends extends ServeCache {
  providers: Map<string, Provider>;
}

/**
 * `psi serve` up to listening (SPEC §4, §13): hardens the process, reads the socket token
 * (a bad one throws), prepares the directories, listens (on the activated socket, or the
 * path), then opens providers and the cache while `/healthz` already answers. Returns
 * undefined, without listening, when `signal` was aborted before the socket was bound.
 */
export async function startServe(options: StartServeOptions): Promise<ServeHandle | undefined> {
  const { env, uid, logger, signal } = options;
  // Harden first, while the config loads: nothing secret is in memory yet.
  const hardening = hardenProcess();
  const loaded = await options.loadConfig();
  reportHardening(await hardening, logger);
  // Keys and values must never reach a swap device (mlockall would crash V8: see harden.ts).
  const swap = await swapExposure();
  if (swap.protected)
    logger.debug(`memory stays out of swap: ${swap.reason}`, { event: "swap", protected: true });
  else logger.warn(swap.reason, { event: "swap", protected: false });

  // A bad token is a startup error (it would otherwise lock every client out).
  const { token, source } = await resolveSocketToken({
    env,
    configToken: loaded.config.socket_token,
  });
  if (token === undefined) {
    logger.info("no socket token configured: the socket's 0600 mode is the only access control", {
      event: "auth",
    });
  } else {
    logger.debug(`socket token from ${source}`, { event: "auth", source });
  }

  const activated = socketActivation(env, options.pid ?? process.pid);
  const target: ListenTarget = activated ?? {
    path: resolve(options.socket || env["PSI_SOCKET"] || loaded.paths.socket),
  };
  await prepareServeDirs({
    stateDir: loaded.paths.stateDir,
    target,
    uid,
    allowInsecure: loaded.config.serve?.allow_insecure_dirs === true,
  });

  // Listen first, then open providers and load the cache: the socket (and /healthz) is
  // up while a large cache.enc decrypts, and lookups that arrive meanwhile wait for it
  // instead of being refused or answered live.
  let open: (backends: Promise<ServeBackends>) => void = () => {};
  const opening = new Promise<ServeBackends>((resolve) => {
    open = resolve;
  });
  const server = createLookupServer({ stateDir: loaded.paths.stateDir, opening, token, logger });
  if (signal?.aborted) {
    const name = String(signal.reason);
    logger.info(`${name} during startup: stopping before listening`, {
      event: "shutdown",
      signal: name,
    });
    return undefined;
  }
  await server.listen(target);
  open(
    (async () => ({
      providers: await options.openProviders(),
      ...(await openConfiguredServeCache(loaded, logger, options.openCacheBackend)),
    }))(),
  );
  let backends: ServeBackends;
  try {
    backends = await opening;
  } catch (error) {
    await server.close();
    throw error;
  }
  const { providers, cache, backend } = backends;
  const where =
    "path" in target ? (server.path ?? target.path) : `the socket systemd passed (fd ${target.fd})`;
  logger.info(`Listening on ${where}`, {
    event: "listen",
    ...("path" in target ? { path: server.path } : { fd: target.fd, activated: true }),
    providers: [...providers.keys()],
    cache: cache === undefined ? "off" : backend === undefined ? "memory" : "file",
    auth: token !== undefined,
  });
  return {
    server,
    reload: () => reloadServe({ configFile: loaded.file, env, uid, server, cache, logger }),
    async close(reason) {
      logger.info(`${reason}: finishing requests in flight, then stopping`, {
        event: "shutdown",
        signal: reason,
        in_flight: server.inFlight(),
      });
      await server.close();
      cache?.close();
      await closeServe(providers, backend, logger);
      logger.info("stopped", { event: "shutdown" });
    },
  };
}
