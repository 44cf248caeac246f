import type { LogFields, Logger } from "@psi/core";

/** A log line as a test sees it. */
export interface LogLine {
  level: string;
  msg: string;
  fields: LogFields | undefined;
}

/**
 * A Logger that keeps its lines as objects for assertions on `msg` and fields. For the
 * real JSON line format use `captureLogger` from `@psi/testkit/unix-http`.
 */
export function recordingLogger(lines: LogLine[] = []): Logger & { lines: LogLine[] } {
  const at =
    (level: string) =>
    (msg: string, fields?: LogFields): void => {
      lines.push({ level, msg, fields });
    };
  const logger = {
    lines,
    debug: at("debug"),
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
    child: () => logger,
    enabled: () => true,
  };
  return logger;
}
