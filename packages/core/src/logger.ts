import { writeSync } from "node:fs";
import type { LogFields, Logger, LogLevel } from "./logger-types.js";

/**
 * Where log lines go: `process.stderr` in the CLI, any writable in tests. A stream with a
 * numeric `fd` (process.stderr) is written with `writeSync` on that descriptor.
 */
export interface LogStream {
  write(chunk: string): unknown;
  isTTY?: boolean;
  fd?: number;
}

/** Human text for a person at a terminal, one JSON object per line for everything else. */
export type LogFormat = "human" | "json";

/** Options of {@link createLogger}. */
export interface LoggerOptions {
  /** The least severe level written; `silent` writes nothing. */
  level: LogLevel | "silent";
  /** Default: `human` when `stream.isTTY`, else `json`. */
  format?: LogFormat;
  stream: LogStream;
  /** The time stamped on each line; default the system clock. */
  clock?: () => Date;
  /** Fields on every line (as `child()` adds them). */
  bindings?: LogFields;
  /**
   * Start each line with its syslog priority (`<3>` error, `<4>` warn, `<6>` info, `<7>`
   * debug): journald reads it from a service's stderr, so `journalctl -p warning` works.
   */
  syslogPrefix?: boolean;
}

const SEVERITY: Record<LogLevel | "silent", number> = {
  debug: 10,
  info: 20,
  warn: 30,
  error: 40,
  silent: 100,
};
const SYSLOG_PRIORITY: Record<LogLevel, number> = { debug: 7, info: 6, warn: 4, error: 3 };
const RESERVED = new Set(["time", "level", "msg"]);
const MAX_DEPTH = 6;

const pause = new Int32Array(new SharedArrayBuffer(4));
const MAX_WAITS = 2000;

/**
 * Writes all of `data` (a string as UTF-8) to `fd` now. Node queues writes to a full pipe
 * or socket (journald, a slow reader) in memory and drops the queue at `process.exit`; a
 * non-blocking descriptor's EAGAIN means "wait a millisecond and try again" (at most
 * about two seconds in all, then the error is thrown).
 */
export function writeAllSync(fd: number, data: string | Uint8Array): void {
  const bytes = typeof data === "string" ? Buffer.from(data, "utf8") : data;
  let offset = 0;
  let waits = 0;
  while (offset < bytes.length) {
    try {
      offset += writeSync(fd, bytes, offset, bytes.length - offset);
      waits = 0;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EAGAIN" || ++waits > MAX_WAITS) throw error;
      Atomics.wait(pause, 0, 0, 1);
    }
  }
}

/** True for the level names `--log-level` accepts. */
export function isLogLevel(value: unknown): value is LogLevel {
  return value === "debug" || value === "info" || value === "warn" || value === "error";
}

// The reference (loguru) takes upper-case names and `WARNING`/`CRITICAL`/`TRACE`/`SUCCESS`;
// scripts and units written for it keep working.
const LEVEL_ALIASES: Record<string, LogLevel> = {
  trace: "debug",
  debug: "debug",
  info: "info",
  success: "info",
  warn: "warn",
  warning: "warn",
  error: "error",
  critical: "error",
};

/** The level a `--log-level`/`PSI_LOG_LEVEL` value names (any case, loguru names too); undefined if none. */
export function parseLogLevel(value: string): LogLevel | undefined {
  return LEVEL_ALIASES[value.trim().toLowerCase()];
}

/**
 * Turns a field value into plain JSON data. Bytes are never written (they may be a
 * secret value passed by mistake): only their length is.
 */
function plain(value: unknown, depth: number, seen: Set<object>): unknown {
  switch (typeof value) {
    case "string":
    case "boolean":
      return value;
    case "number":
      return Number.isFinite(value) ? value : String(value);
    case "bigint":
      return value.toString();
    case "undefined":
    case "function":
    case "symbol":
      return undefined;
  }
  if (value === null) return null;
  const object = value as object;
  if (object instanceof Error) return object.message;
  if (object instanceof Date)
    return Number.isNaN(object.getTime()) ? "Invalid Date" : object.toISOString();
  if (ArrayBuffer.isView(object) || object instanceof ArrayBuffer)
    return `<${object.byteLength} bytes>`;
  if (seen.has(object)) return "[Circular]";
  if (depth >= MAX_DEPTH) return "[...]";
  seen.add(object);
  let out: unknown;
  if (Array.isArray(object) || object instanceof Set) {
    out = [...object].map((item) => plain(item, depth + 1, seen) ?? null);
  } else {
    const entries = object instanceof Map ? [...object.entries()] : Object.entries(object);
    const record: Record<string, unknown> = {};
    for (const [key, item] of entries) {
      const converted = plain(item, depth + 1, seen);
      if (converted !== undefined) record[String(key)] = converted;
    }
    out = record;
  }
  seen.delete(object);
  return out;
}

/** Bindings and fields as one JSON-ready record; `time`, `level` and `msg` stay the logger's. */
function mergeFields(bindings: LogFields, fields: LogFields | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const source of [bindings, fields ?? {}]) {
    for (const [key, value] of Object.entries(source)) {
      const converted = plain(value, 0, new Set());
      if (converted === undefined) continue;
      out[RESERVED.has(key) ? `${key}_field` : key] = converted;
    }
  }
  return out;
}

function humanValue(value: unknown): string {
  if (typeof value === "string") return /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value);
  return JSON.stringify(value);
}

function pad(n: number, width = 2): string {
  return String(n).padStart(width, "0");
}

/** `HH:MM:SS.mmm` in local time: a person at a terminal knows the date. */
export function humanTime(date: Date): string {
  return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`;
}

/**
 * A {@link Logger} writing each whole line synchronously (nothing is buffered, so nothing
 * is lost at exit). JSON lines: `time` (ISO 8601), `level`, `msg`,
 * `event`, then the fields; human lines: `HH:MM:SS.mmm LEVEL msg [event] key=value ...`.
 */
export function createLogger(options: LoggerOptions): Logger {
  const threshold = SEVERITY[options.level];
  const format: LogFormat = options.format ?? (options.stream.isTTY ? "human" : "json");
  const clock = options.clock ?? (() => new Date());
  const stream = options.stream;
  const write =
    typeof stream.fd === "number"
      ? (line: string) => writeAllSync(stream.fd as number, line)
      : (line: string) => stream.write(line);

  const render = (level: LogLevel, msg: string, fields: Record<string, unknown>): string => {
    const { event, ...rest } = fields;
    const time = clock();
    const prefix = options.syslogPrefix ? `<${SYSLOG_PRIORITY[level]}>` : "";
    if (format === "json") {
      const line: Record<string, unknown> = { time: time.toISOString(), level, msg };
      if (event !== undefined) line["event"] = event;
      return `${prefix}${JSON.stringify(Object.assign(line, rest))}\n`;
    }
    let line = `${humanTime(time)} ${level.toUpperCase().padEnd(5)} ${msg.replace(/\n/g, "\n  ")}`;
    if (event !== undefined)
      line += ` [${typeof event === "string" ? event : JSON.stringify(event)}]`;
    for (const [key, value] of Object.entries(rest)) line += ` ${key}=${humanValue(value)}`;
    return `${prefix}${line}\n`;
  };

  const make = (bindings: LogFields): Logger => {
    const log = (level: LogLevel) => (msg: string, fields?: LogFields) => {
      if (SEVERITY[level] < threshold) return;
      try {
        write(render(level, msg, mergeFields(bindings, fields)));
      } catch {
        // A logger never takes the process down (a closed stderr, EPIPE, ...).
      }
    };
    return {
      debug: log("debug"),
      info: log("info"),
      warn: log("warn"),
      error: log("error"),
      child: (more) => make({ ...bindings, ...more }),
      enabled: (level) => SEVERITY[level] >= threshold,
    };
  };
  return make(options.bindings ?? {});
}
