import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { rootCertificates } from "node:tls";
import type { FetchFn } from "./http.js";

/** TLS settings of the Infisical block (SPEC §2: verify_ssl, ca_cert). */
export interface TlsOptions {
  /** Extra CA certificates (PEM), trusted on top of Node's bundled roots. */
  ca?: string | undefined;
  /** false turns certificate verification off (verify_ssl: false). */
  verify: boolean;
}

/**
 * A `fetch` over node:http(s) with a CA and verification setting: Node's global fetch
 * takes no per-call CA without undici's Agent, which Node does not expose. Answers are
 * small JSON documents, read whole.
 */
export function tlsFetch(options: TlsOptions): FetchFn {
  const ca = options.ca ? [...rootCertificates, options.ca] : undefined;
  return (input, init) =>
    new Promise<Response>((resolve, reject) => {
      const url = new URL(input instanceof Request ? input.url : String(input));
      const headers: Record<string, string> = {};
      new Headers(init?.headers).forEach((value, name) => {
        headers[name] = value;
      });
      const body = typeof init?.body === "string" ? init.body : undefined;
      if (body !== undefined) headers["content-length"] = String(Buffer.byteLength(body));
      const send = url.protocol === "https:" ? httpsRequest : httpRequest;
      const request = send(
        url,
        {
          method: init?.method ?? "GET",
          headers,
          ...(url.protocol === "https:"
            ? { rejectUnauthorized: options.verify, ...(ca ? { ca } : {}) }
            : {}),
          ...(init?.signal ? { signal: init.signal } : {}),
        },
        (response) => {
          const chunks: Buffer[] = [];
          response.on("data", (chunk: Buffer) => chunks.push(chunk));
          response.on("error", reject);
          response.on("end", () => {
            const status = response.statusCode ?? 500;
            const answerHeaders = new Headers();
            for (const [name, value] of Object.entries(response.headers)) {
              if (typeof value === "string") answerHeaders.set(name, value);
              else if (Array.isArray(value))
                for (const item of value) answerHeaders.append(name, item);
            }
            const nullBody = status === 204 || status === 205 || status === 304;
            resolve(
              new Response(nullBody ? null : Buffer.concat(chunks), {
                status,
                headers: answerHeaders,
              }),
            );
          });
        },
      );
      request.on("error", reject);
      request.end(body);
    });
}
