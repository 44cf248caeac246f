import { resolve } from "node:path";
import { openServeCache as openCache, type ServeCache } from "@psi/cache";
import type { LoadedConfig, Logger, Provider } from "@psi/core";
import { cachePath } from "@psi/core";
import {
  closeServe,
  createLookupServer,
  type HardenResult,
  hardenProcess,
  type ListenTarget,
  prepareServeDirs,
  reloadServe,
  resolveSocketToken,
  socketActivation,
  swapExposure,
} from "@psi/lookup-server";
import type { Command } from "commander";
import type { App } from "../app.js";

/**
 * The cache as serve opens it (@psi/cache's openServeCache: every failure a warning, lookups
 * go live), over this run's configuration and its one opened backend.
 */
export function openServeCache(
  app: App,
  loaded: LoadedConfig,
  logger: Logger,
): Promise<ServeCache> {
  return openCache({
    settings: loaded.config.cache,
    path: cachePath(loaded),
    logger,
    openBackend: async () => (await app.context()).openCacheBackend?.(),
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

async function openServeBackends(
  app: App,
  loaded: LoadedConfig,
  logger: Logger,
): Promise<ServeBackends> {
  const providers = await app.openProviders();
  return { providers, ...(await openServeCache(app, loaded, logger)) };
}

function waitForSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const stop = (signal: NodeJS.Signals) => {
      process.off("SIGTERM", stop);
      process.off("SIGINT", stop);
      resolve(signal);
    };
    process.on("SIGTERM", stop);
    process.on("SIGINT", stop);
  });
}

/** `psi serve`: everything from config to the socket, then the lookup loop until SIGTERM/SIGINT. */
export async function runServe(app: App, options: { socket?: string }): Promise<void> {
  // Handlers first: `systemctl stop` during startup (opening an HSM can take seconds)
  // must still end in a clean exit 0, not death by the default signal action.
  const stopping = waitForSignal();
  // SIGHUP's default action kills: replace it from the start; it reloads once listening.
  let onHangup: (() => Promise<void>) | undefined;
  let reloads = Promise.resolve();
  const hangup = () => {
    if (onHangup) reloads = reloads.then(onHangup).catch(() => {});
  };
  process.on("SIGHUP", hangup);
  try {
    await serveUntilSignal(app, options, stopping, (reloader) => {
      onHangup = reloader;
    });
  } finally {
    process.off("SIGHUP", hangup);
    await reloads;
  }
}

async function serveUntilSignal(
  app: App,
  options: { socket?: string },
  stopping: Promise<NodeJS.Signals>,
  onReload: (reloader: () => Promise<void>) => void,
): Promise<void> {
  let stopRequested: NodeJS.Signals | undefined;
  void stopping.then((signal) => {
    stopRequested = signal;
  });
  // Harden first, while the config loads: nothing secret is in memory yet.
  const hardening = hardenProcess();
  const loaded = await app.loadConfig();
  const logger = app.logger();
  reportHardening(await hardening, logger);
  // Keys and values must never reach a swap device (mlockall would crash V8: see harden.ts).
  const swap = await swapExposure();
  if (swap.protected)
    logger.debug(`memory stays out of swap: ${swap.reason}`, { event: "swap", protected: true });
  else logger.warn(swap.reason, { event: "swap", protected: false });

  // A bad token is a startup error (it would otherwise lock every client out).
  const { token, source } = await resolveSocketToken({
    env: app.env,
    configToken: loaded.config.socket_token,
  });
  if (token === undefined) {
    logger.info("no socket token configured: the socket's 0600 mode is the only access control", {
      event: "auth",
    });
  } else {
    logger.debug(`socket token from ${source}`, { event: "auth", source });
  }

  const activated = socketActivation(app.env, process.pid);
  const target: ListenTarget = activated ?? {
    path: resolve(options.socket || app.env["PSI_SOCKET"] || loaded.paths.socket),
  };
  await prepareServeDirs({
    stateDir: loaded.paths.stateDir,
    target,
    uid: app.uid,
    allowInsecure: loaded.config.serve?.allow_insecure_dirs === true,
  });

  // Listen first, then open providers and load the cache: the socket (and /healthz) is
  // up while a large cache.enc decrypts, and lookups that arrive meanwhile wait for it
  // instead of being refused or answered live.
  let open: (backends: Promise<ServeBackends>) => void = () => {};
  const opening = new Promise<ServeBackends>((resolve) => {
    open = resolve;
  });
  const server = createLookupServer({
    stateDir: loaded.paths.stateDir,
    opening,
    token,
    logger,
  });
  if (stopRequested !== undefined) {
    logger.info(`${stopRequested} during startup: stopping before listening`, {
      event: "shutdown",
      signal: stopRequested,
    });
    return;
  }
  await server.listen(target);
  open(openServeBackends(app, loaded, logger));
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
  onReload(() =>
    reloadServe({ configFile: loaded.file, env: app.env, uid: app.uid, server, cache, logger }),
  );

  const signal = await stopping;
  logger.info(`${signal}: finishing requests in flight, then stopping`, {
    event: "shutdown",
    signal,
    in_flight: server.inFlight(),
  });
  await server.close();
  cache?.close();
  await closeServe(providers, backend, logger);
  logger.info("stopped", { event: "shutdown" });
}

/** `psi serve [--socket PATH]` (SPEC §4, §11). */
export function registerServe(program: Command, app: App): void {
  program
    .command("serve")
    .description("run the lookup service Podman's shell driver calls (until SIGTERM/SIGINT)")
    .option(
      "--socket <path>",
      "socket to listen on (env PSI_SOCKET; default: the scope's socket); ignored under socket activation",
    )
    .action(async (options: { socket?: string }) => {
      await runServe(app, options);
    });
}
