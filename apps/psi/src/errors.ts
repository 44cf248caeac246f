import { isPsiError } from "@psi/core";
import type { Output } from "./app.js";
import { withHint } from "./text.js";

/** Exit codes (SPEC §11): 0 success, 1 user-facing error, 2 usage error. */
export const EXIT_OK = 0;
export const EXIT_ERROR = 1;
export const EXIT_USAGE = 2;

/** A wrong combination of flags or arguments: exit 2 with the message. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** The one place library errors become text for a person (SPEC §11). */
export function describeError(error: unknown, debug: boolean): string {
  let text: string;
  if (isPsiError(error)) {
    text = `${withHint(`psi: ${error.message}`, error.hint, 2)}\n`;
  } else if (error instanceof Error) {
    text = `psi: unexpected error: ${error.message}\n`;
    if (!debug) text += "  (run with --debug for details)\n";
  } else {
    text = `psi: unexpected error: ${String(error)}\n`;
  }
  if (debug && error instanceof Error && error.stack) text += `${error.stack}\n`;
  return text;
}

/**
 * Prints why a run failed on `stderr` and returns its exit code: a usage error's message
 * and exit 2, any other error as {@link describeError} words it and exit 1.
 */
export function reportFailure(error: unknown, stderr: Output, debug: boolean): number {
  if (error instanceof UsageError) {
    stderr.write(`psi: ${error.message}\n(run with --help for usage)\n`);
    return EXIT_USAGE;
  }
  stderr.write(describeError(error, debug));
  return EXIT_ERROR;
}
