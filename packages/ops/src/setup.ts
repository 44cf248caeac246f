import type { CacheBackend, Env, LoadedConfig, Logger, Provider, PsiContext } from "@psi/core";
import { cachePath, errorMessage, makeContext } from "@psi/core";
import type { DryRunReport, SetupProgress, SetupResult, SetupRetry } from "@psi/setup";
import { expectedDriverOptions } from "./driver.js";
import { lookupSocketPath, waitForServeLoad } from "./socket.js";

// `psi setup` on this host (SPEC §9): the Podman client, the driver options a secret gets,
// the retry policy, the providers to fetch from and the wait for serve before restarts,
// around @psi/setup's runSetup and planDryRun. Heavy modules load inside the functions.

/** Options of {@link runHostSetup} and {@link dryRunHostSetup}. */
export interface HostSetupOptions {
  loaded: LoadedConfig;
  env: Env;
  uid: number;
  logger: Logger;
  /** Only the workloads of this provider (`--provider`). */
  provider?: string | undefined;
  /** `--podman-socket`; then `PSI_PODMAN_SOCKET`, then the scope's. */
  podmanSocket?: string | undefined;
  /** PSI's lookup socket the driver options name (`--socket`); then `PSI_SOCKET`, then psi.conf. */
  socket?: string | undefined;
  /** Opens the configured cache backend (one shared instance; not closed here). */
  openCacheBackend?: () => Promise<CacheBackend | undefined>;
}

/** Options of {@link runHostSetup}. */
export interface RunHostSetupOptions extends HostSetupOptions {
  /** Opens the configured provider `name` (closed here when setup ends). */
  openProviders: (name: string) => Promise<ReadonlyMap<string, Provider>>;
  /** Let a source that lists no secrets remove the workload's existing ones. */
  allowEmpty?: boolean;
  onProgress?: (progress: SetupProgress) => void;
  signal?: AbortSignal;
}

function contextOf(options: HostSetupOptions): PsiContext {
  return {
    ...makeContext(options.loaded, { logger: options.logger, env: options.env }),
    ...(options.openCacheBackend === undefined
      ? {}
      : { openCacheBackend: options.openCacheBackend }),
  };
}

async function podmanFor(options: HostSetupOptions) {
  const { createPodmanClient, podmanSocketPath } = await import("@psi/podman");
  const socketPath = podmanSocketPath({
    flag: options.podmanSocket,
    env: options.env,
    defaultPath: options.loaded.paths.podmanSocket,
  });
  return createPodmanClient({ socketPath, scope: options.loaded.scope });
}

/** What `psi install` writes for this host's socket (see expectedDriverOptions). */
function driverOptions(options: HostSetupOptions): Promise<Record<string, string>> {
  return expectedDriverOptions({
    loaded: options.loaded,
    env: options.env,
    uid: options.uid,
    socket: options.socket,
  });
}

/** `psi setup --dry-run`: Podman's shell-driver secrets and drop-in gaps; changes nothing. */
export async function dryRunHostSetup(options: HostSetupOptions): Promise<DryRunReport> {
  const { planDryRun } = await import("@psi/setup");
  return planDryRun({
    context: contextOf(options),
    podman: await podmanFor(options),
    expectedDriverOptions: await driverOptions(options),
    provider: options.provider,
  });
}

/** Retries of setup listings: Infisical's `retry_delays` (SPEC §9); other providers none. */
async function retryFor(loaded: LoadedConfig, logger: Logger): Promise<SetupRetry> {
  const delays = loaded.config.providers?.infisical?.retry_delays;
  if (!delays || delays.length === 0) return (operation) => operation();
  const { setupRetry } = await import("@psi/provider-infisical");
  return setupRetry(delays, logger);
}

/** Opens the providers setup fetches from: those of the selected workloads that fetch remotely. */
async function openFetchingProviders(options: RunHostSetupOptions): Promise<Map<string, Provider>> {
  const { providerFetchesRemotely } = await import("@psi/unitgen");
  const only = options.provider;
  const names = new Set(
    Object.values(options.loaded.config.workloads ?? {})
      .map((workload) => workload.provider)
      .filter((name) => (only === undefined || name === only) && providerFetchesRemotely(name)),
  );
  const opened = new Map<string, Provider>();
  for (const name of names) {
    for (const [key, provider] of await options.openProviders(name)) opened.set(key, provider);
  }
  return opened;
}

/**
 * Before `on_change: restart` restarts anything: waits until the running serve (on
 * `PSI_SOCKET` or the scope's socket) has loaded the cache.enc setup just wrote.
 */
async function waitForServe(options: HostSetupOptions, writtenAt: number): Promise<void> {
  const { resolveSocketToken } = await import("@psi/lookup-server");
  const { token } = await resolveSocketToken({
    env: options.env,
    configToken: options.loaded.config.socket_token,
  }).catch(() => ({ token: undefined }));
  await waitForServeLoad({
    socket: lookupSocketPath(undefined, options.env, options.loaded.paths),
    token,
    writtenAt,
    logger: options.logger,
  });
}

/**
 * `psi setup` (SPEC §9): fetches each selected workload's secrets, registers them with
 * Podman, writes drop-ins and refreshes the cache. Providers are opened and closed here;
 * a secret whose driver options are current is left alone.
 */
export async function runHostSetup(options: RunHostSetupOptions): Promise<SetupResult> {
  const { loaded, logger } = options;
  const context = contextOf(options);
  const podman = await podmanFor(options);
  const { runSetup } = await import("@psi/setup");
  const providers = await openFetchingProviders(options);
  try {
    const settings = loaded.config.cache;
    const cache =
      settings?.enabled && settings.backend !== undefined
        ? {
            path: cachePath(loaded),
            backend: async () => {
              const backend = await context.openCacheBackend?.();
              return backend;
            },
          }
        : undefined;
    const retry = await retryFor(loaded, logger);
    // Without them, every current secret is re-created; that is slower, not wrong.
    const expected = await driverOptions(options).catch((error: unknown) => {
      logger.debug(
        `cannot work out the driver options psi install would write: ${errorMessage(error)}`,
        { event: "setup.driver_options" },
      );
      return undefined;
    });
    return await runSetup({
      context,
      providers,
      podman,
      cache,
      provider: options.provider,
      retry,
      allowEmpty: options.allowEmpty === true,
      expectedDriverOptions: expected,
      ...(options.onProgress === undefined ? {} : { onProgress: options.onProgress }),
      ...(options.signal === undefined ? {} : { signal: options.signal }),
      beforeRestart: (writtenAt) => waitForServe(options, writtenAt),
    });
  } finally {
    await Promise.all([...providers.values()].map((provider) => provider.close().catch(() => {})));
  }
}
