import { isPsiError } from "@psi/core";
import { withHint } from "./text.js";

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
