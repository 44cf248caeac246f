import type {
  CacheBackend,
  Env,
  LoadedConfig,
  Logger,
  LogLevel,
  Provider,
  PsiContext,
} from "@psi/core";
import { createLogger, loadConfig, makeContext } from "@psi/core";
import { backendFactory, providerFactory } from "./wiring.js";

/** Options every command accepts (SPEC §11). */
export interface GlobalOptions {
  config?: string;
  logLevel?: LogLevel;
  json?: boolean;
  debug?: boolean;
}

/** Output streams; tests pass their own. */
export interface Io {
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
  stdin: NodeJS.ReadableStream & { isTTY?: boolean };
}

/**
 * What a command needs from the process: environment, streams, the config (loaded once,
 * on first use), the logger, and the providers and cache backend opened from the wiring.
 * Commands get I/O from here, never from globals, so they stay testable.
 */
export interface App {
  readonly env: Env;
  readonly uid: number;
  readonly io: Io;
  globals(): GlobalOptions;
  setGlobals(options: GlobalOptions): void;
  logger(): Logger;
  loadConfig(): Promise<LoadedConfig>;
  context(): Promise<PsiContext>;
  /** Opens every configured provider; a provider that fails to open is logged and skipped. */
  openProviders(only?: string): Promise<Map<string, Provider>>;
  /** The configured cache backend, not opened; undefined when the cache is off or unset. */
  cacheBackend(): Promise<CacheBackend | undefined>;
  /** Exit code for a run that completed but must report failure (e.g. setup drift). */
  exitCode: number;
  print(text: string): void;
  printJson(value: unknown): void;
}

/** Builds the App for one CLI run. */
export function createApp(io: Io, env: Env, uid: number): App {
  let globals: GlobalOptions = {};
  let logger: Logger | undefined;
  let loaded: Promise<LoadedConfig> | undefined;
  let openedBackend: Promise<CacheBackend | undefined> | undefined;

  const app: App = {
    env,
    uid,
    io,
    exitCode: 0,
    globals: () => globals,
    setGlobals(options) {
      globals = options;
      logger = undefined;
    },
    logger() {
      if (!logger) {
        logger = createLogger({
          level: globals.logLevel ?? (globals.debug ? "debug" : "info"),
          stream: io.stderr,
        });
      }
      return logger;
    },
    loadConfig() {
      loaded ??= (async () => {
        const result = await loadConfig({
          ...(globals.config === undefined ? {} : { path: globals.config }),
          env,
          uid,
        });
        for (const warning of result.warnings)
          app.logger().warn(warning, { event: "config.warning" });
        return result;
      })();
      return loaded;
    },
    async context() {
      const context = makeContext(await app.loadConfig(), { logger: app.logger(), env });
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
      const context = await app.context();
      const opened = new Map<string, Provider>();
      const configured = Object.entries(context.config.providers ?? {}).filter(
        ([name, block]) => block !== undefined && (only === undefined || name === only),
      );
      for (const [name] of configured) {
        try {
          const factory = await providerFactory(name);
          const provider = factory(context);
          await provider.open();
          opened.set(name, provider);
        } catch (error) {
          app
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
    async cacheBackend() {
      const context = await app.context();
      const cache = context.config.cache;
      if (!cache?.enabled || cache.backend === undefined) return undefined;
      const factory = await backendFactory(cache.backend);
      return factory(context);
    },
    print(text) {
      io.stdout.write(text.endsWith("\n") ? text : `${text}\n`);
    },
    printJson(value) {
      io.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
    },
  };
  return app;
}
