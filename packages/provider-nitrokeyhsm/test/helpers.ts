import { resolve } from "node:path";
import type { LogFields, Logger } from "@psi/core";
import { isPsiError, type PsiError } from "@psi/core";

/** The shared vectors (hsm-private-key.pem, nitrokeyhsm-mapping.json, manifest.json). */
export const VECTORS = resolve(import.meta.dirname, "../../../../shared/vectors");

/** A log line as a test sees it. */
export interface LogLine {
  level: string;
  msg: string;
  fields: LogFields | undefined;
}

/** A Logger that keeps its lines in memory for assertions. */
export function recordingLogger(): Logger & { lines: LogLine[] } {
  const lines: LogLine[] = [];
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

/** The PsiError a promise rejects with (fails the test on anything else). */
export async function rejection(promise: Promise<unknown>): Promise<PsiError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (isPsiError(error)) return error;
  throw new Error(`expected a PsiError, got ${String(error)}`);
}
