import type {
  CacheBackend,
  CacheBackendFactory,
  Env,
  LoadedConfig,
  Logger,
  Provider,
  ProviderFactory,
  PsiContext,
} from "@psi/core";
import { isPsiError, loadConfig, makeContext, PsiError } from "@psi/core";

// The only place that knows which providers and cache backends exist. Each loads on first
// use, so `psi cache status` never pays for PKCS#11 or HTTP clients.
const providers: Record<string, () => Promise<ProviderFactory>> = {
  infisical: async () => (await import("@psi/provider-infisical")).infisicalProvider,
  nitrokeyhsm: async () => (await import("@psi/provider-nitrokeyhsm")).nitrokeyhsmProvider,
  local: async () => (await import("@psi/provider-local")).localProvider,
};

const backends: Record<string, () => Promise<CacheBackendFactory>> = {
  tpm: async () => (await import("@psi/cache-tpm")).tpmCacheBackend,
  hsm: async () => (await import("@psi/cache-hsm")).hsmCacheBackend,
  keyfile: async () => (await import("@psi/cache-keyfile")).keyfileCacheBackend,
};

/** Names of every provider PSI knows. */
export const providerNames = Object.keys(providers);
/** Names of every cache backend PSI knows. */
export const backendNames = Object.keys(backends);

/** The factory for a provider name. */
export async function providerFactory(name: string): Promise<ProviderFactory> {
  const load = providers[name];
  if (!load) {
    throw new PsiError("provider.unknown", `unknown provider "${name}"`, {
      hint: `known providers: ${providerNames.join(", ")}`,
    });
  }
  return load();
}

/** The factory for a cache backend name. */
export async function backendFactory(name: string): Promise<CacheBackendFactory> {
  const load = backends[name];
  if (!load) {
    throw new PsiError("cache.unknown_backend", `unknown cache backend "${name}"`, {
      hint: `known backends: ${backendNames.join(", ")}`,
    });
  }
  return load();
}

/** Options of {@link openHost}. */
export interface HostOptions {
  env: Env;
  uid: number;
  /** The configuration file a person named (`--config`); else PSI_CONFIG, else the scope's. */
  configPath?: string | undefined;
  /** The logger of the moment (a frontend may change its level after the host opened). */
  logger: () => Logger;
}

/**
 * One run's view of the host: the configuration (loaded once), contexts over it, the
 * configured providers and the cache backend, opened through the wiring above.
 */
export interface Host {
  loadConfig(): Promise<LoadedConfig>;
  /** The configuration, or undefined when the scope's default file is absent. */
  optionalConfig(): Promise<LoadedConfig | undefined>;
  /** A context whose openCacheBackend opens the configured backend once per host. */
  context(): Promise<PsiContext>;
  /** Opens every configured provider; a provider that fails to open is logged and skipped. */
  openProviders(only?: string): Promise<Map<string, Provider>>;
  /** The configured cache backend, not opened; undefined when the cache is off or unset. */
  cacheBackend(): Promise<CacheBackend | undefined>;
  /**
   * The configured cache backend opened (the one {@link Host.context}'s openCacheBackend
   * shares: serve, setup and the local provider use it); undefined when none is configured.
   */
  openCacheBackend(): Promise<CacheBackend | undefined>;
}

/** Opens nothing yet: each part of the host loads on first use. */
export function openHost(options: HostOptions): Host {
  const { env, uid, configPath } = options;
  let loaded: Promise<LoadedConfig> | undefined;
  let openedBackend: Promise<CacheBackend | undefined> | undefined;
  const host: Host = {
    loadConfig() {
      loaded ??= (async () => {
        const named = configPath || env["PSI_CONFIG"];
        const result = await loadConfig({
          ...(configPath === undefined ? {} : { path: configPath }),
          env,
          uid,
        }).catch((error: unknown) => {
          // Only the scope default may be absent (commands then use defaults); a file the
          // operator named must exist, or every command would quietly ignore the typo.
          if (named && isPsiError(error, "config.missing")) {
            throw new PsiError(
              "config.named_missing",
              `${error.message} (named by ${configPath ? "--config" : "PSI_CONFIG"})`,
              {
                cause: error,
                hint: "fix the path, or drop --config/PSI_CONFIG to use the scope's default file",
              },
            );
          }
          throw error;
        });
        for (const warning of result.warnings)
          options.logger().warn(warning, { event: "config.warning" });
        return result;
      })();
      return loaded;
    },
    async optionalConfig() {
      try {
        return await host.loadConfig();
      } catch (error) {
        if (!isPsiError(error, "config.missing")) throw error;
        return undefined;
      }
    },
    async context() {
      const context = makeContext(await host.loadConfig(), { logger: options.logger(), env });
      // One opened backend per run, shared by the cache and the local provider (an HSM
      // session must not be opened twice). Independent of cache.enabled: local secrets
      // stay readable while the cache is switched off.
      context.openCacheBackend = () => {
        openedBackend ??= (async () => {
          const name = context.config.cache?.backend;
          if (name === undefined) return undefined;
          const backend = (await backendFactory(name))(context);
          await backend.open();
          return backend;
        })();
        return openedBackend;
      };
      return context;
    },
    async openProviders(only) {
      const context = await host.context();
      const opened = new Map<string, Provider>();
      const configured = Object.entries(context.config.providers ?? {}).filter(
        ([name, block]) => block !== undefined && (only === undefined || name === only),
      );
      for (const [name] of configured) {
        try {
          const provider = (await providerFactory(name))(context);
          await provider.open();
          opened.set(name, provider);
        } catch (error) {
          options
            .logger()
            .warn(`provider ${name} failed to open; its secrets are served from the cache only`, {
              event: "provider.open_failed",
              provider: name,
              error: error instanceof Error ? error.message : String(error),
            });
        }
      }
      return opened;
    },
    async openCacheBackend() {
      return (await host.context()).openCacheBackend?.();
    },
    async cacheBackend() {
      const context = await host.context();
      const cache = context.config.cache;
      if (!cache?.enabled || cache.backend === undefined) return undefined;
      return (await backendFactory(cache.backend))(context);
    },
  };
  return host;
}
