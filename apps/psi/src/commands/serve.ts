import { type CacheStore, createCacheStore } from "@psi/cache";
import type { CacheBackend, LoadedConfig, Logger, Provider } from "@psi/core";
import { cachePath, errorMessage, isPsiError } from "@psi/core";
import { formatTag } from "@psi/envelope";
import {
  createLookupServer,
  type HardenResult,
  hardenProcess,
  type ListenTarget,
  resolveSocketToken,
  socketActivation,
} from "@psi/lookup-server";
import type { Command } from "commander";
import type { App } from "../app.js";

/** What serve opened for its cache: the store (memory-only without a backend) and the backend. */
export interface ServeCache {
  cache: CacheStore | undefined;
  backend: CacheBackend | undefined;
}

/**
 * Opens the cache the way serve needs it (SPEC §4.4, §6.5): every failure is a warning
 * and lookups go live — a missing key never takes the host down. Off (`cache.enabled:
 * false`, or no cache block) → no cache at all; enabled without a backend, or a backend
 * that fails → a memory-only store (values fetched live are still kept).
 */
export async function openServeCache(
  app: App,
  loaded: LoadedConfig,
  logger: Logger,
): Promise<ServeCache> {
  const settings = loaded.config.cache;
  const path = cachePath(loaded);
  if (settings === undefined || !settings.enabled) {
    logger.info("cache is off: every lookup goes to its provider", {
      event: "cache.open",
      enabled: false,
    });
    return { cache: undefined, backend: undefined };
  }
  const memoryOnly = (): ServeCache => ({
    cache: createCacheStore({ path, logger }),
    backend: undefined,
  });
  if (settings.backend === undefined) {
    logger.warn(
      "cache.enabled is true but cache.backend is not set: container starts hit the live providers " +
        "(set cache.backend to tpm, hsm or keyfile and run psi cache init)",
      { event: "cache.open", path },
    );
    return memoryOnly();
  }
  let backend: CacheBackend | undefined;
  try {
    backend = await (await app.context()).openCacheBackend?.();
  } catch (error) {
    logger.warn(
      `cache backend ${settings.backend} failed to open: container starts hit the live providers`,
      {
        event: "cache.open",
        backend: settings.backend,
        error: errorMessage(error),
        ...(isPsiError(error) && error.hint ? { hint: error.hint } : {}),
      },
    );
    return memoryOnly();
  }
  if (backend === undefined) return memoryOnly();
  // inotify tells the store when setup replaced the file; a stat per second is the safety net.
  const cache = createCacheStore({ path, backend, logger, watch: true });
  try {
    const stats = await cache.load();
    logger.info(
      stats.fileExists
        ? `cache loaded from ${path}: ${stats.fileEntries} entries`
        : `no cache file at ${path} yet (setup writes it): lookups go live until then`,
      {
        event: "cache.load",
        path,
        backend: settings.backend,
        entries: stats.fileEntries,
        ...(stats.writtenAt === undefined ? {} : { written_at: stats.writtenAt }),
        ...(stats.legacy ? { legacy: true } : {}),
      },
    );
  } catch (error) {
    const fields: Record<string, unknown> = {
      event: "cache.load",
      path,
      backend: settings.backend,
      error: errorMessage(error),
    };
    if (isPsiError(error)) {
      fields["code"] = error.code;
      if (error.hint) fields["hint"] = error.hint;
    }
    const what = isPsiError(error, "cache.tag_mismatch")
      ? `cache file ${path} was written by another backend (configured: ${settings.backend}, tag ${formatTag(backend.tag)})`
      : `cannot read the cache ${path}`;
    // The store keeps watching the file: the next setup's rewrite is picked up.
    logger.warn(`${what}; lookups go to the providers until setup rewrites it`, fields);
  }
  return { cache, backend };
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
  let stopRequested: NodeJS.Signals | undefined;
  void stopping.then((signal) => {
    stopRequested = signal;
  });
  // Harden first, while the config loads: nothing secret is in memory yet.
  const hardening = hardenProcess();
  const loaded = await app.loadConfig();
  const logger = app.logger();
  reportHardening(await hardening, logger);

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
    path: options.socket || app.env["PSI_SOCKET"] || loaded.paths.socket,
  };
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

  const signal = await stopping;
  logger.info(`${signal}: finishing requests in flight, then stopping`, {
    event: "shutdown",
    signal,
    in_flight: server.inFlight(),
  });
  await server.close();
  cache?.close();
  await closeAll(providers, backend, logger);
  logger.info("stopped", { event: "shutdown" });
}

async function closeAll(
  providers: Map<string, Provider>,
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
