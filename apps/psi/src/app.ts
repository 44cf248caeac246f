import { fstatSync } from "node:fs";
import type {
  CacheBackend,
  Env,
  LoadedConfig,
  Logger,
  LogLevel,
  Provider,
  PsiContext,
} from "@psi/core";
import { createLogger, isPsiError, loadConfig, makeContext, PsiError } from "@psi/core";
import { backendFactory, providerFactory } from "./wiring.js";

/** Options every command accepts (SPEC §11). */
export interface GlobalOptions {
  config?: string;
  logLevel?: LogLevel;
  /** JSON log lines even on a terminal (`--log-json`, `PSI_LOG_JSON`). */
  logJson?: boolean;
  json?: boolean;
  debug?: boolean;
}

/** One line of progress on a terminal's stderr, redrawn in place; log lines are written above it. */
export interface Progress {
  update(text: string): void;
  done(): void;
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
  /** A progress line on stderr when it is a terminal; a no-op otherwise (SPEC §11). */
  progress(): Progress;
  /** Exit code for a run that completed but must report failure (e.g. setup drift). */
  exitCode: number;
  /**
   * The one JSON rule of read commands (status, setup, cache status, tls status, login,
   * imports, nitrokeyhsm status/preflight): JSON with `--json` or when stdout is not a
   * terminal. Other commands print JSON only with `--json`.
   */
  reportJson(): boolean;
  print(text: string): void;
  printJson(value: unknown): void;
}

const CLEAR_LINE = "\r\x1b[2K";

/**
 * True when stderr is the journal stream systemd connected (`JOURNAL_STREAM` is
 * `device:inode` of it, as systemd.exec(5) says to check), so lines carry a priority.
 */
export function stderrIsJournal(env: Env, stderr: Io["stderr"]): boolean {
  const stream = env["JOURNAL_STREAM"];
  if (!stream) return false;
  const fd = (stderr as { fd?: unknown }).fd;
  if (typeof fd !== "number") return true;
  try {
    const stat = fstatSync(fd, { bigint: true });
    return stream === `${stat.dev}:${stat.ino}`;
  } catch {
    return false;
  }
}

/** `staleOpts` → `stale_opts`: every `--json` output uses the logs' key style. */
export function snakeCaseKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(snakeCaseKeys);
  if (value === null || typeof value !== "object" || value instanceof Date) return value;
  return Object.fromEntries(
    Object.entries(value).map(([key, item]) => [
      key.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toLowerCase(),
      snakeCaseKeys(item),
    ]),
  );
}

/** The boolean an environment variable holds, read as the reference's CLI (click) reads it. */
export function envFlag(value: string | undefined): boolean | undefined {
  if (value === undefined || value.trim() === "") return undefined;
  const text = value.trim().toLowerCase();
  if (["1", "true", "t", "yes", "y", "on"].includes(text)) return true;
  if (["0", "false", "f", "no", "n", "off"].includes(text)) return false;
  return undefined;
}

/** Builds the App for one CLI run. */
export function createApp(io: Io, env: Env, uid: number): App {
  let globals: GlobalOptions = {};
  let logger: Logger | undefined;
  // The progress line shown now (terminal only): a log line clears it and redraws it below.
  let shownProgress = "";
  const logStream =
    io.stderr.isTTY === true
      ? {
          isTTY: true,
          write(line: string) {
            if (shownProgress) io.stderr.write(CLEAR_LINE);
            io.stderr.write(line);
            if (shownProgress) io.stderr.write(shownProgress);
          },
        }
      : (io.stderr as Io["stderr"] & { fd?: number });
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
          stream: logStream,
          ...(globals.logJson ? { format: "json" as const } : {}),
          syslogPrefix: stderrIsJournal(env, io.stderr),
        });
      }
      return logger;
    },
    loadConfig() {
      loaded ??= (async () => {
        const named = globals.config || env["PSI_CONFIG"];
        const result = await loadConfig({
          ...(globals.config === undefined ? {} : { path: globals.config }),
          env,
          uid,
        }).catch((error: unknown) => {
          // Only the scope default may be absent (commands then use defaults); a file the
          // operator named must exist, or every command would quietly ignore the typo.
          if (named && isPsiError(error, "config.missing")) {
            throw new PsiError(
              "config.named_missing",
              `${error.message} (named by ${globals.config ? "--config" : "PSI_CONFIG"})`,
              {
                cause: error,
                hint: "fix the path, or drop --config/PSI_CONFIG to use the scope's default file",
              },
            );
          }
          throw error;
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
    reportJson: () => globals.json === true || io.stdout.isTTY !== true,
    progress() {
      if (io.stderr.isTTY !== true) return { update: () => {}, done: () => {} };
      return {
        update(text) {
          shownProgress = text;
          io.stderr.write(`${CLEAR_LINE}${text}`);
        },
        done() {
          if (shownProgress) io.stderr.write(CLEAR_LINE);
          shownProgress = "";
        },
      };
    },
    print(text) {
      io.stdout.write(text.endsWith("\n") ? text : `${text}\n`);
    },
    printJson(value) {
      io.stdout.write(`${JSON.stringify(snakeCaseKeys(value), null, 2)}\n`);
    },
  };
  return app;
}
