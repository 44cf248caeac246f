import { dirname, resolve } from "node:path";
import { type CacheStore, createCacheStore } from "@psi/cache";
import type { CacheBackend, LoadedConfig, Logger, Provider } from "@psi/core";
import { cachePath, ensureDir, errorMessage, isPsiError, loadConfig } from "@psi/core";
import { formatTag } from "@psi/envelope";
import {
  checkPrivateDir,
  createLookupServer,
  type HardenResult,
  hardenProcess,
  type ListenTarget,
  type LookupServer,
  resolveSocketToken,
  socketActivation,
  swapExposure,
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
  // After a key change (psi cache init --force, then setup) the store re-reads the key
  // where the backend can (keyfile, tpm credential file) before calling itself degraded.
  const reloadKey = backend.reloadKey?.bind(backend);
  const cache = createCacheStore({ path, backend, logger, watch: true, reloadKey });
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

/**
 * Creates the socket directory and state_dir (0700) when missing and refuses them when
 * another user could write them (issue 9: a writable socket directory lets anyone take
 * the socket over), unless `serve.allow_insecure_dirs` says so.
 */
async function checkServeDirs(app: App, loaded: LoadedConfig, target: ListenTarget): Promise<void> {
  const dirs: [string, string][] = [[loaded.paths.stateDir, "state_dir"]];
  // Under socket activation systemd made the socket (SocketMode=0600) and its directory.
  if ("path" in target) dirs.unshift([dirname(target.path), "socket directory"]);
  for (const [dir, what] of dirs) {
    await ensureDir(dir, 0o700);
    if (loaded.config.serve?.allow_insecure_dirs === true) continue;
    await checkPrivateDir(dir, { uid: app.uid, what, override: "serve.allow_insecure_dirs" });
  }
}

/**
 * SIGHUP, as Vault Agent does: re-reads the socket token (credential file, then the
 * configuration file, then PSI_SOCKET_TOKEN) and the cache file. A token that cannot be
 * read keeps the current one; serve never dies of a hangup.
 */
async function reload(
  app: App,
  loaded: LoadedConfig,
  server: LookupServer,
  cache: CacheStore | undefined,
  logger: Logger,
): Promise<void> {
  logger.info("SIGHUP: re-reading the socket token and the cache file", { event: "reload" });
  try {
    const fresh = await loadConfig({ path: loaded.file, env: app.env, uid: app.uid });
    const { token, source } = await resolveSocketToken({
      env: app.env,
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
  await checkServeDirs(app, loaded, target);

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
  onReload(() => reload(app, loaded, server, cache, logger));

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
