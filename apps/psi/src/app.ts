import type { Env, Logger, LogLevel } from "@psi/core";
import { createLogger, snakeCaseKeys, stderrIsJournal } from "@psi/core";
import { type Host, openHost } from "@psi/ops/host";

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

/** Where a command writes: Node's stream, a test's capture, or a writer on a descriptor. */
export interface Output {
  write(chunk: string | Uint8Array): unknown;
  readonly isTTY?: boolean | undefined;
  /** The descriptor behind it, when there is one (the logger writes to it directly). */
  readonly fd?: number | undefined;
}

/** What one run of the CLI gets from the process (tests pass their own). */
export interface RunOptions {
  io: Io;
  env: Env;
  uid: number;
}

/** Output streams; tests pass their own. */
export interface Io {
  stdout: Output;
  stderr: Output;
  stdin: NodeJS.ReadableStream & { isTTY?: boolean };
}

/**
 * What a command needs from the process: environment, streams, the logger, and the host
 * (@psi/ops openHost: the config loaded once, providers and cache backend from the wiring).
 * Commands get I/O from here, never from globals, so they stay testable.
 */
export interface App extends Host {
  readonly env: Env;
  readonly uid: number;
  readonly io: Io;
  globals(): GlobalOptions;
  setGlobals(options: GlobalOptions): void;
  logger(): Logger;
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
  /** A read command's result: `value` as JSON when {@link reportJson}, else `text()`. */
  report(value: unknown, text: () => string): void;
  /** Any other command's result: `value` as JSON with `--json`, else `text()`. */
  output(value: unknown, text: () => string): void;
  print(text: string): void;
  printJson(value: unknown): void;
}

const CLEAR_LINE = "\r\x1b[2K";

/** Builds the App for one CLI run. */
export function createApp(io: Io, env: Env, uid: number): App {
  let globals: GlobalOptions = {};
  let logger: Logger | undefined;
  let opened: Host | undefined;
  // The host opens on first use, after the global options named the configuration file.
  const host = () =>
    (opened ??= openHost({ env, uid, configPath: globals.config, logger: () => app.logger() }));
  // The progress line shown now (terminal only): a log line clears it and redraws it below.
  let shownProgress = "";
  // Made on the first log line: a command that logs nothing never opens stderr.
  const logStream = () =>
    io.stderr.isTTY === true
      ? {
          isTTY: true,
          write(line: string) {
            if (shownProgress) io.stderr.write(CLEAR_LINE);
            io.stderr.write(line);
            if (shownProgress) io.stderr.write(shownProgress);
          },
        }
      : io.stderr;

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
      logger ??= createLogger({
        level: globals.logLevel ?? (globals.debug ? "debug" : "info"),
        stream: logStream(),
        ...(globals.logJson ? { format: "json" as const } : {}),
        syslogPrefix: stderrIsJournal(env, io.stderr),
      });
      return logger;
    },
    loadConfig: () => host().loadConfig(),
    optionalConfig: () => host().optionalConfig(),
    context: () => host().context(),
    openProviders: (only) => host().openProviders(only),
    cacheBackend: () => host().cacheBackend(),
    openCacheBackend: () => host().openCacheBackend(),
    reportJson: () => globals.json === true || io.stdout.isTTY !== true,
    report(value, text) {
      if (app.reportJson()) app.printJson(value);
      else app.print(text());
    },
    output(value, text) {
      if (globals.json) app.printJson(value);
      else app.print(text());
    },
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
