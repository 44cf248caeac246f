import { errorMessage, PsiError } from "@psi/core";
import { isEnvelopeError } from "@psi/envelope";

/**
 * The PsiError for a failure reading or writing the cache at `path`: an envelope error
 * keeps its code (`cache.<code>`, e.g. `cache.auth_failed`) and hint; file-system errors
 * become `cache.unreadable` / `cache.unwritable`; a PsiError (from a backend) passes through.
 */
export function cacheError(
  error: unknown,
  path: string,
  doing: "read" | "write" = "read",
): PsiError {
  if (error instanceof PsiError) return error;
  if (isEnvelopeError(error)) {
    const message = error.message.includes(path) ? error.message : `${path}: ${error.message}`;
    return new PsiError(`cache.${error.code}`, message, {
      cause: error,
      ...(error.hint === undefined ? {} : { hint: error.hint }),
    });
  }
  const code = doing === "read" ? "cache.unreadable" : "cache.unwritable";
  return new PsiError(code, `cannot ${doing} the cache file ${path}: ${errorMessage(error)}`, {
    cause: error,
    hint: "check cache.path and that psi runs as the user owning state_dir",
  });
}
