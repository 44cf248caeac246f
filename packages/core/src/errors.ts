/** Options for {@link PsiError}: how to fix it, and what caused it. */
export interface PsiErrorOptions {
  hint?: string;
  cause?: unknown;
}

/**
 * The one error type PSI's libraries throw. `code` is stable (`cache.bad_magic`,
 * `config.invalid`, `provider.unreachable`, ...), `message` says what failed and where,
 * `hint` says how to fix it. Only the CLI turns it into output and an exit code.
 */
export class PsiError extends Error {
  readonly code: string;
  readonly hint: string | undefined;

  constructor(code: string, message: string, options: PsiErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "PsiError";
    this.code = code;
    this.hint = options.hint;
  }
}

/** True when `error` is a {@link PsiError} (optionally with the given code). */
export function isPsiError(error: unknown, code?: string): error is PsiError {
  return error instanceof PsiError && (code === undefined || error.code === code);
}

/** A one-line description of any thrown value, for logs and wrapped errors. */
export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}
