import { PsiError } from "@psi/core";

/** A PsiError from the Infisical client; `status` is the HTTP status when Infisical answered. */
export type InfisicalError = PsiError & { readonly status?: number };

/** Stable codes of the errors this package throws. */
export type InfisicalErrorCode =
  | "provider.unreachable"
  | "provider.timeout"
  | "provider.auth_failed"
  | "provider.not_found"
  | "provider.http_error"
  | "provider.bad_response"
  | "provider.value_hidden"
  | "provider.pending_approval"
  | "provider.rate_limited"
  | "provider.reference_unexpandable"
  | "provider.unknown_project"
  | "provider.not_configured"
  | "provider.bad_mapping"
  | "provider.cloud_identity";

/** Builds an {@link InfisicalError}; never pass secret values or tokens in `message`. */
export function infisicalError(
  code: InfisicalErrorCode,
  message: string,
  options: { hint?: string; cause?: unknown; status?: number } = {},
): InfisicalError {
  const error = new PsiError(code, message, {
    ...(options.hint === undefined ? {} : { hint: options.hint }),
    ...(options.cause === undefined ? {} : { cause: options.cause }),
  });
  if (options.status !== undefined)
    Object.defineProperty(error, "status", { value: options.status, enumerable: true });
  return error as InfisicalError;
}

/** The HTTP status Infisical answered with, when the error came from an answer. */
export function infisicalErrorStatus(error: unknown): number | undefined {
  if (!(error instanceof PsiError)) return undefined;
  const status = (error as InfisicalError).status;
  return typeof status === "number" ? status : undefined;
}
