import { setTimeout as delay } from "node:timers/promises";
import { errorMessage, isPsiError, type Logger } from "@psi/core";
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

/**
 * Spreads a configured delay over [0.75, 1.25) of itself, so that a fleet whose hosts
 * failed together does not retry together. `random` is in [0, 1) (Math.random by default).
 */
export function jitteredSeconds(delaySeconds: number, random: () => number = Math.random): number {
  const factor = 0.75 + 0.5 * Math.min(Math.max(random(), 0), 1);
  return Math.round(delaySeconds * factor * 1000) / 1000;
}

/** Options of {@link withInfisicalRetry}. */
export interface RetryOptions {
  /** Seconds to wait before each retry (`retry_delays`, each jittered); attempts = delays + 1. */
  delays: readonly number[];
  signal?: AbortSignal | undefined;
  /** Called before each wait (log "retrying in N s") with the jittered delay. */
  onRetry?: (info: { attempt: number; delaySeconds: number; error: unknown }) => void;
  /** Which errors to retry; default {@link isRetryableInfisicalError}. */
  retryable?: (error: unknown) => boolean;
  /** The jitter's random source in [0, 1); Math.random by default (tests pass their own). */
  random?: () => number;
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
      const configured = options.delays[attempt - 1];
      if (configured === undefined || !retryable(error) || options.signal?.aborted) throw error;
      const delaySeconds = jitteredSeconds(configured, options.random);
      options.onRetry?.({ attempt, delaySeconds, error });
      await delay(
        delaySeconds * 1000,
        undefined,
        options.signal ? { signal: options.signal } : undefined,
      );
    }
  }
}

/** How {@link createInfisicalClient} answers 429 (rate limited). */
export interface RateLimitPolicy {
  /** Retries after a 429 before giving up (default 3). */
  retries?: number;
  /**
   * The longest `Retry-After` worth waiting for, seconds (default 30 for setup and tooling,
   * 2 for lookups, which hold a container start): a longer one fails at once.
   */
  maxWaitSeconds?: number;
  /** The jitter's random source in [0, 1) (Math.random by default). */
  random?: () => number;
}

/**
 * Seconds a `Retry-After` header asks for: delta-seconds or an HTTP-date (RFC 9110
 * §10.2.3); undefined when absent or unreadable.
 */
export function retryAfterSeconds(header: string | undefined, now: number): number | undefined {
  if (header === undefined) return undefined;
  const text = header.trim();
  if (/^\d+$/.test(text)) return Number(text);
  const date = Date.parse(text);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, Math.ceil((date - now) / 1000));
}

/**
 * The wait before retrying a 429: what `Retry-After` asks (1 s when it says nothing), plus
 * up to a quarter of it (at least 250 ms) of jitter so the hosts of a fleet come back
 * spread out; undefined when it is longer than `maxWaitSeconds`.
 */
export function rateLimitWaitMs(
  retryAfter: number | undefined,
  maxWaitSeconds: number,
  random: () => number = Math.random,
): number | undefined {
  const seconds = retryAfter ?? 1;
  if (seconds > maxWaitSeconds) return undefined;
  const spread = Math.max(250, seconds * 250);
  return Math.round(seconds * 1000 + Math.min(Math.max(random(), 0), 1) * spread);
}

/**
 * A setup retry policy (the shape `runSetup`'s `retry` takes): listings of the infisical
 * provider are retried after each of `delays` (`retry_delays`, SPEC §9) with a warning per
 * retry; other providers' operations run once.
 */
export function setupRetry(
  delays: readonly number[] | undefined,
  logger: Logger,
): <T>(
  operation: () => Promise<T>,
  info: { provider: string; signal: AbortSignal | undefined },
) => Promise<T> {
  if (!delays || delays.length === 0) return (operation) => operation();
  return (operation, info) => {
    if (info.provider !== "infisical") return operation();
    return withInfisicalRetry(() => operation(), {
      delays,
      signal: info.signal,
      onRetry: ({ attempt, delaySeconds, error }) =>
        logger.warn(
          `${errorMessage(error)}; retrying in ${delaySeconds} s (attempt ${attempt + 1} of ${delays.length + 1})`,
          { event: "setup.retry", provider: info.provider, attempt, delay: delaySeconds },
        ),
    });
  };
}
