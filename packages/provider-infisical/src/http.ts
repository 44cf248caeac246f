import { PsiError } from "@psi/core";
import { ofetch } from "ofetch";
import { infisicalError } from "./errors.js";

/** The `fetch` this package calls; tests and unusual hosts pass their own. */
export type FetchFn = typeof globalThis.fetch;

/** One HTTP exchange: everything the client needs to judge the answer. */
export interface HttpAnswer {
  status: number;
  body: string;
  /** The `Retry-After` header, when the answer has one (429, 503). */
  retryAfter?: string | undefined;
}

/** A request to one base URL (Infisical, or a cloud metadata service). */
export interface HttpRequest {
  method: "GET" | "POST" | "PATCH" | "PUT";
  /** Absolute URL, or a path joined to the base URL. */
  url: string;
  query?: Record<string, string>;
  body?: Record<string, unknown> | string;
  headers?: Record<string, string>;
  /** Bounded: every request has one. */
  timeoutMs: number;
  signal?: AbortSignal | undefined;
}

/**
 * Sends one request and returns status and body text, whatever the status. Connection
 * failures become `provider.unreachable` ("cannot reach <service> at <base>"), an
 * exceeded `timeoutMs` becomes `provider.timeout`; a caller's abort is passed through.
 */
export function createHttp(options: {
  baseUrl: string;
  service: string;
  fetch?: FetchFn | undefined;
}) {
  const base = options.baseUrl.replace(/\/+$/, "");
  const $fetch = ofetch.create(
    { retry: false, ignoreResponseError: true, responseType: "text" },
    options.fetch ? { fetch: options.fetch } : {},
  );

  return async function send(request: HttpRequest): Promise<HttpAnswer> {
    const timeout = AbortSignal.timeout(request.timeoutMs);
    const signal = request.signal ? AbortSignal.any([request.signal, timeout]) : timeout;
    const url = /^https?:\/\//.test(request.url) ? request.url : `${base}${request.url}`;
    try {
      const response = await $fetch.raw<string, "text">(url, {
        method: request.method,
        ...(request.query ? { query: request.query } : {}),
        ...(request.body === undefined ? {} : { body: request.body }),
        ...(request.headers ? { headers: request.headers } : {}),
        signal,
      });
      const retryAfter = response.headers.get("retry-after") ?? undefined;
      return {
        status: response.status,
        body: typeof response._data === "string" ? response._data : "",
        ...(retryAfter === undefined ? {} : { retryAfter }),
      };
    } catch (error) {
      if (request.signal?.aborted) throw request.signal.reason ?? error;
      // ofetch's error carries the request options, body included (credentials, values):
      // keep only the network-level cause.
      const cause =
        error instanceof Error && error.cause instanceof Error ? error.cause : undefined;
      if (cause instanceof PsiError) throw cause;
      if (timeout.aborted) {
        throw infisicalError(
          "provider.timeout",
          `${options.service} at ${base} did not answer within ${formatSeconds(request.timeoutMs)}`,
          {
            cause,
            hint: "check the service's health and the network; timeouts are setup_timeout / lookup_timeout",
          },
        );
      }
      const reason = networkReason(cause);
      throw infisicalError("provider.unreachable", `cannot reach ${options.service} at ${base}`, {
        cause,
        hint: `${reason ? `${reason}: ` : ""}check that ${base} is reachable from this host (DNS, firewall, proxy, TLS)`,
      });
    }
  };
}

/** The innermost system error message (ECONNREFUSED, ENOTFOUND, a TLS failure...). */
function networkReason(error: Error | undefined): string | undefined {
  let current: unknown = error;
  let message: string | undefined;
  for (let depth = 0; current instanceof Error && depth < 5; depth++) {
    message = current.message;
    current = current.cause;
  }
  return message;
}

function formatSeconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(3))} s`;
}
