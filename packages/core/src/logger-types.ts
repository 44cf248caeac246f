/** Log levels, most verbose first. */
export type LogLevel = "debug" | "info" | "warn" | "error";

/** Structured fields of a log line: `event` names what happened (`lookup`, `cache.load`, ...). */
export type LogFields = { event?: string } & Record<string, unknown>;

/**
 * The logger every library takes through its options. Lines go to stderr: human text on
 * a TTY, one JSON object per line otherwise (`time`, `level`, `msg`, `event`, fields).
 * Never pass a secret value in `msg` or fields.
 */
export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** A logger that adds `bindings` to every line. */
  child(bindings: LogFields): Logger;
  /** True when a line at `level` would be written (skip building costly fields). */
  enabled(level: LogLevel): boolean;
}
