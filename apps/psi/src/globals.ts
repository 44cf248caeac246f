import { envFlag, type LogLevel, parseLogLevel } from "@psi/core";
import type { GlobalOptions } from "./app.js";
import { UsageError } from "./errors.js";

/** `PSI_LOG_LEVEL` as the reference reads it; a value it cannot read is a usage error. */
export function levelFromEnv(value: string | undefined): LogLevel | undefined {
  if (value === undefined || value.trim() === "") return undefined;
  const level = parseLogLevel(value);
  if (!level) {
    throw new UsageError(
      `PSI_LOG_LEVEL=${value} is not a log level (debug, info, warn/warning or error)`,
    );
  }
  return level;
}

/** The options every command runs with: the command line's, then `PSI_LOG_LEVEL` and `PSI_LOG_JSON`. */
export function resolveGlobals(
  flags: GlobalOptions,
  env: Readonly<Record<string, string | undefined>>,
): GlobalOptions {
  const logLevel = flags.logLevel ?? levelFromEnv(env["PSI_LOG_LEVEL"]);
  return {
    ...(flags.config === undefined ? {} : { config: flags.config }),
    ...(logLevel === undefined ? {} : { logLevel }),
    logJson: flags.logJson === true || envFlag(env["PSI_LOG_JSON"]) === true,
    json: flags.json === true,
    debug: flags.debug === true,
  };
}
