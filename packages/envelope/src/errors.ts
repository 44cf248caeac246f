/** The stable codes of {@link EnvelopeError}, one per way a PSIC file or blob can be unreadable. */
export type EnvelopeErrorCode =
  | "too_short"
  | "bad_magic"
  | "unsupported_version"
  | "tag_mismatch"
  | "truncated"
  | "auth_failed"
  | "bad_payload";

/** Options for {@link EnvelopeError}: how to fix it, which file, and what caused it. */
export interface EnvelopeErrorOptions {
  hint?: string;
  path?: string;
  cause?: unknown;
}

/**
 * Why a cache file or hybrid blob could not be read. `code` is stable, `message` says what
 * failed (and names the file when a path was given), `hint` says how to fix it. This
 * package cannot depend on @psi/core, so callers map it to a PsiError (`cache.<code>`).
 */
export class EnvelopeError extends Error {
  readonly code: EnvelopeErrorCode;
  readonly hint: string | undefined;
  readonly path: string | undefined;

  constructor(code: EnvelopeErrorCode, message: string, options: EnvelopeErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "EnvelopeError";
    this.code = code;
    this.hint = options.hint;
    this.path = options.path;
  }
}

/** True when `error` is an {@link EnvelopeError} (optionally with the given code). */
export function isEnvelopeError(error: unknown, code?: EnvelopeErrorCode): error is EnvelopeError {
  return error instanceof EnvelopeError && (code === undefined || error.code === code);
}

/**
 * Re-issues an error raised below the file level (a cipher, the payload parser) with the
 * file named in front, so every message says where it failed.
 */
export function atPath(error: EnvelopeError, path: string | undefined): EnvelopeError {
  const where = path ?? "cache file";
  return new EnvelopeError(error.code, `${where}: ${error.message}`, {
    hint: error.hint,
    ...(path === undefined ? {} : { path }),
    cause: error,
  });
}
