import type { LogFields, Logger, NitrokeyHsmConfig, PsiConfig, PsiContext } from "@psi/core";
import { defaultPaths, type Env } from "@psi/core";

/** A log line as a test sees it. */
export interface LogLine {
  level: string;
  msg: string;
  fields: LogFields | undefined;
}

/** A Logger that keeps its lines in memory for assertions. */
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

/** A PsiContext whose state_dir is `stateDir` and whose nitrokeyhsm block is `hsm`. */
export function hsmContext(
  hsm: NitrokeyHsmConfig,
  stateDir: string,
  env: Env = {},
): PsiContext & { logger: ReturnType<typeof recordingLogger> } {
  const config = { providers: { nitrokeyhsm: hsm }, workloads: {} } as unknown as PsiConfig;
  return {
    config,
    scope: "user",
    paths: { ...defaultPaths("user", env, 1000, stateDir), stateDir },
    logger: recordingLogger(),
    env,
  };
}
