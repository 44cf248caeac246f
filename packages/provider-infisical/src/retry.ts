import { setTimeout as delay } from "node:timers/promises";
import { isPsiError } from "@psi/core";
import { infisicalErrorStatus } from "./errors.js";

/** Statuses setup retries (SPEC §9): Infisical's transient 404s during propagation, 502, 503. */
export const RETRYABLE_STATUSES: ReadonlySet<number> = new Set([404, 502, 503]);

/**
 * True for the failures setup retries: no connection, a timeout (a hung connection is a
 * connection error too), and HTTP 404/502/503. Everything else fails fast.
 */
export function isRetryableInfisicalError(error: unknown): boolean {
  if (isPsiError(error, "provider.unreachable") || isPsiError(error, "provider.timeout"))
    return true;
  const status = infisicalErrorStatus(error);
  return (
    status !== undefined &&
    RETRYABLE_STATUSES.has(status) &&
    !isPsiError(error, "provider.auth_failed")
  );
}

/** Options of {@link withInfisicalRetry}. */
export interface RetryOptions {
  /** Seconds to wait before each retry (`retry_delays`); attempts = delays + 1. */
  delays: readonly number[];
  signal?: AbortSignal | undefined;
  /** Called before each wait (log "retrying in N s"). */
  onRetry?: (info: { attempt: number; delaySeconds: number; error: unknown }) => void;
  /** Which errors to retry; default {@link isRetryableInfisicalError}. */
  retryable?: (error: unknown) => boolean;
}

/** Runs `operation`, retrying retryable failures after each of `delays`; the last error is thrown. */
export async function withInfisicalRetry<T>(
  operation: (attempt: number) => Promise<T>,
  options: RetryOptions,
): Promise<T> {
  const retryable = options.retryable ?? isRetryableInfisicalError;
  for (let attempt = 1; ; attempt++) {
    try {
      return await operation(attempt);
    } catch (error) {
      const delaySeconds = options.delays[attempt - 1];
      if (delaySeconds === undefined || !retryable(error) || options.signal?.aborted) throw error;
      options.onRetry?.({ attempt, delaySeconds, error });
      await delay(
        delaySeconds * 1000,
        undefined,
        options.signal ? { signal: options.signal } : undefined,
      );
    }
  }
}
