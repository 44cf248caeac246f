import { createHash, timingSafeEqual } from "node:crypto";
import { chmodSync, lstatSync, statSync, unlinkSync } from "node:fs";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import { createRequire } from "node:module";
import { connect, type Socket } from "node:net";
import { dirname, resolve } from "node:path";
import type { CacheStore } from "@psi/cache";
import type { Logger, Provider } from "@psi/core";
import { ensureDir, errorMessage, isPsiError, PsiError, parseMapping } from "@psi/core";
import { createMetrics, type LookupOutcome } from "./metrics.js";
import {
  createLookupService,
  isLookupFailure,
  LookupFailure,
  type LookupService,
} from "./service.js";

// Node 24's ESM facade for node:http reads every export, and three of them (WebSocket,
// CloseEvent, MessageEvent) are getters that load undici: ~30 ms at every `psi serve`
// start. require() leaves them lazy.
const { createServer } = createRequire(import.meta.url)("node:http") as typeof import("node:http");

/** Largest mapping `POST /store` accepts (SPEC §4.1). */
export const MAX_STORE_BYTES = 1024 * 1024;

/** Options of {@link createLookupServer}. */
export interface LookupServerOptions {
  /** Where mapping files live. */
  stateDir: string;
  /**
   * The providers that opened (a provider missing here answers `unknown_provider` on a
   * miss); none when omitted.
   */
  providers?: ReadonlyMap<string, Provider> | undefined;
  /** The cache; without one every lookup goes to the provider. */
  cache?: CacheStore | undefined;
  /**
   * Providers and cache that are still opening, given instead of `providers` and `cache`:
   * the server can listen at once (a 10,000-entry cache takes a while to decrypt), answers
   * `/healthz`, and holds every other request until this resolves.
   */
  opening?: Promise<LookupBackends> | undefined;
  /** Bearer token; without one auth is off (SPEC §4.2). */
  token?: string | undefined;
  logger: Logger;
  /** Largest store body in bytes (default 1 MiB). */
  maxStoreBytes?: number;
  /** How long `close()` waits for in-flight requests before cutting them (default 10 s). */
  drainTimeoutMs?: number;
  /** Kernel listen backlog: a booting host starts dozens of containers at once (default 1024). */
  backlog?: number;
  /** Serve `GET /metrics` (default true). */
  metrics?: boolean;
  /** Wall clock in milliseconds (cache age in metrics); Date.now by default. */
  now?: () => number;
  /** Remember parsed mappings, invalidated by inotify on state_dir (default true). */
  watchStateDir?: boolean;
}

/** What lookups are answered from: the opened providers and the cache. */
export interface LookupBackends {
  providers: ReadonlyMap<string, Provider>;
  cache?: CacheStore | undefined;
}

/** Where to listen: a socket path, or a descriptor handed over by systemd. */
export type ListenTarget = { path: string } | { fd: number };

/** The running lookup service. */
export interface LookupServer {
  /** Binds (path: stale socket removed, mode 0600, directory 0700 when created) or adopts `fd`. */
  listen(target: ListenTarget): Promise<void>;
  /**
   * Stops accepting, lets in-flight requests finish (bounded by `drainTimeoutMs`, then
   * cuts them), and removes the socket file it created. Providers are the caller's.
   */
  close(): Promise<void>;
  /** The socket path when listening on a path. */
  readonly path: string | undefined;
  /** Requests being answered right now. */
  inFlight(): number;
  /** Replaces the bearer token (SIGHUP); undefined turns auth off. Later requests use it. */
  setToken(token: string | undefined): void;
  /** The underlying node:http server (tests, advanced wiring). */
  readonly server: Server;
}

const OK_BODY = Buffer.from("ok");
const UNAUTHORIZED_BODY = Buffer.from(
  '{"error":"unauthorized","detail":"invalid or missing token"}',
);
const NOT_FOUND_BODY = Buffer.from('{"error":"not_found","detail":"not found"}');
const BAD_REQUEST_BODY = '{"error":"bad_request","detail":"malformed HTTP request"}';
const BAD_REQUEST_RESPONSE =
  "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nConnection: close\r\n" +
  `Content-Length: ${Buffer.byteLength(BAD_REQUEST_BODY)}\r\n\r\n${BAD_REQUEST_BODY}`;
const TEXT = "text/plain; charset=utf-8";
const JSON_TYPE = "application/json";
const HANGUP_CODES = new Set([
  "ECONNRESET",
  "EPIPE",
  "ECONNABORTED",
  "ERR_STREAM_DESTROYED",
  "ERR_STREAM_WRITE_AFTER_END",
]);

/** A failure answered over HTTP that the lookup service does not know (413). */
interface HttpError {
  status: number;
  code: string;
  detail: string;
}

function sha256(text: string): Buffer {
  return createHash("sha256").update(text).digest();
}

function errorBody(code: string, detail: string): Buffer {
  return Buffer.from(JSON.stringify({ error: code, detail }));
}

function isHangup(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return code !== undefined && HANGUP_CODES.has(code);
}

/** Longest error detail the socket answers with. */
const MAX_DETAIL = 512;
/** After the drain timeout: how long aborted requests get to answer before their connections are cut. */
const ABORT_GRACE_MS = 1_000;
/** How long the stale-socket probe waits for an answer before calling the socket alive. */
const PROBE_TIMEOUT_MS = 2_000;
/** The only answers that prove nobody listens: refused (socket file without a listener) or gone. */
const STALE_CODES = new Set(["ECONNREFUSED", "ENOENT"]);

/**
 * Connects to an existing socket file: "stale" only when the kernel says nobody listens.
 * A full backlog (EAGAIN), a timeout or any other error means someone may be serving, and
 * unlinking their socket would orphan them (issue 9).
 */
function probeSocket(path: string): Promise<string> {
  return new Promise((done) => {
    const probe = connect(path);
    const timer = setTimeout(() => {
      probe.destroy();
      done(`it did not answer a connection within ${PROBE_TIMEOUT_MS} ms`);
    }, PROBE_TIMEOUT_MS);
    probe.once("connect", () => {
      clearTimeout(timer);
      probe.destroy();
      done("alive");
    });
    probe.once("error", (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const code = error.code ?? "";
      done(STALE_CODES.has(code) ? "stale" : `a connection failed with ${code || error.message}`);
    });
  });
}

/**
 * The lookup service (SPEC §4): HTTP/1.1 on a Unix socket answering Podman's shell
 * driver. Lookups read the mapping, answer from the cache when they can, and otherwise
 * ask the provider once for all concurrent misses of the same mapping.
 */
export function createLookupServer(options: LookupServerOptions): LookupServer {
  const { logger } = options;
  const maxStoreBytes = options.maxStoreBytes ?? MAX_STORE_BYTES;
  const drainTimeoutMs = options.drainTimeoutMs ?? 10_000;
  const wallClock = options.now ?? Date.now;
  const metrics = options.metrics === false ? undefined : createMetrics();
  const digestOf = (token: string | undefined) =>
    token === undefined || token === "" ? undefined : sha256(token);
  let tokenDigest = digestOf(options.token);
  const shutdown = new AbortController();
  let closing = false;
  let cache: CacheStore | undefined;
  let service: LookupService | undefined;
  function build(backends: LookupBackends): LookupService {
    cache = backends.cache;
    service = createLookupService({
      stateDir: options.stateDir,
      providers: backends.providers,
      cache,
      logger,
      signal: shutdown.signal,
      watchStateDir: options.watchStateDir ?? true,
      onProviderLatency: metrics
        ? (provider, seconds) => metrics.providerLatency(provider, seconds)
        : undefined,
    });
    // Opened after close() began: nothing will use it, stop its watchers.
    if (closing) service.close();
    return service;
  }
  const opened: Promise<LookupService> =
    options.opening === undefined
      ? Promise.resolve(build({ providers: options.providers ?? new Map(), cache: options.cache }))
      : options.opening.then(build);
  // A failed opening is answered per request (and reported by whoever passed it).
  opened.catch(() => {});
  let active = 0;
  const idle: Array<() => void> = [];
  let boundPath: string | undefined;
  let boundIno: number | undefined;
  let closed: Promise<void> | undefined;

  function authorized(req: IncomingMessage): boolean {
    if (tokenDigest === undefined) return true;
    const header = req.headers.authorization;
    if (header === undefined || header.length < 8 || header.slice(0, 7).toLowerCase() !== "bearer ")
      return false;
    // Equal-length digests: the comparison time says nothing about the token.
    return timingSafeEqual(sha256(header.slice(7).trim()), tokenDigest);
  }

  function send(res: ServerResponse, status: number, body: Uint8Array, type: string): void {
    if (res.destroyed) return;
    const headers: Record<string, string | number> = {
      "Content-Type": type,
      "Content-Length": body.byteLength,
    };
    if (closing) headers["Connection"] = "close";
    res.writeHead(status, headers);
    res.end(body);
  }

  function fail(res: ServerResponse, error: HttpError): void {
    if (error.status === 413) res.setHeader("Connection", "close");
    // Details may quote what a client or a provider sent: never echo more than a line's worth.
    const detail =
      error.detail.length > MAX_DETAIL ? `${error.detail.slice(0, MAX_DETAIL)}…` : error.detail;
    send(res, error.status, errorBody(error.code, detail), JSON_TYPE);
  }

  /** The HTTP answer for anything a handler threw. */
  function failure(error: unknown, what: string): HttpError {
    if (isLookupFailure(error))
      return { status: error.status, code: error.failure, detail: error.message };
    logger.error(`${what}: internal error`, {
      event: what,
      outcome: "internal_error",
      error: errorMessage(error),
    });
    return { status: 502, code: "internal_error", detail: "internal error; see the psi serve log" };
  }

  function decodeId(raw: string): string {
    if (!raw.includes("%")) return raw;
    try {
      return decodeURIComponent(raw);
    } catch {
      throw new LookupFailure(
        400,
        "invalid_secret_id",
        "invalid secret ID: malformed percent-encoding",
      );
    }
  }

  async function lookup(service: LookupService, rawId: string, res: ServerResponse): Promise<void> {
    try {
      const answer = await service.lookup(decodeId(rawId));
      send(res, 200, answer.value, "application/octet-stream");
      metrics?.lookup(answer.source, "ok");
    } catch (error) {
      const answer = failure(error, "lookup");
      metrics?.lookup(isLookupFailure(error) ? error.source : "none", answer.code as LookupOutcome);
      fail(res, answer);
    }
  }

  function readBody(req: IncomingMessage): Promise<Buffer> {
    const declared = Number(req.headers["content-length"]);
    if (Number.isFinite(declared) && declared > maxStoreBytes) {
      return Promise.reject(tooLarge());
    }
    return new Promise((resolveBody, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      req.on("data", (chunk: Buffer) => {
        size += chunk.length;
        if (size > maxStoreBytes) {
          req.removeAllListeners("data");
          req.pause();
          reject(tooLarge());
          return;
        }
        chunks.push(chunk);
      });
      req.on("end", () => resolveBody(Buffer.concat(chunks, size)));
      req.on("error", reject);
      req.on("aborted", () =>
        reject(Object.assign(new Error("client hung up"), { code: "ECONNRESET" })),
      );
    });
  }

  function tooLarge(): HttpError & { tooLarge: true } {
    return {
      status: 413,
      code: "request_too_large",
      detail: `mapping larger than ${maxStoreBytes} bytes`,
      tooLarge: true,
    };
  }

  function isTooLarge(error: unknown): error is HttpError {
    return (
      typeof error === "object" &&
      error !== null &&
      (error as { tooLarge?: boolean }).tooLarge === true
    );
  }

  /** `/store` takes a mapping: a JSON object with a string `provider` (400 otherwise). */
  function checkMapping(id: string, body: Uint8Array): void {
    try {
      parseMapping(body, `the mapping sent for secret ${id}`);
    } catch (error) {
      logger.info(`store ${id}: not a mapping`, {
        event: "store",
        secret_id: id,
        outcome: "invalid_mapping",
      });
      throw new LookupFailure(400, "corrupt_mapping", errorMessage(error));
    }
  }

  async function store(
    service: LookupService,
    rawId: string,
    req: IncomingMessage,
    res: ServerResponse,
  ): Promise<void> {
    let id = rawId;
    try {
      id = decodeId(rawId);
      service.checkId(id);
      const body = await readBody(req);
      checkMapping(id, body);
      await service.store(id, body);
      send(res, 200, OK_BODY, TEXT);
    } catch (error) {
      if (isHangup(error)) {
        logger.debug(`store ${id}: client hung up`, {
          event: "store",
          secret_id: id,
          outcome: "hangup",
        });
        return;
      }
      if (isTooLarge(error)) {
        logger.info(`store ${id}: body over ${maxStoreBytes} bytes`, {
          event: "store",
          secret_id: id,
          outcome: "too_large",
        });
        fail(res, error);
        return;
      }
      fail(res, failure(error, "store"));
    }
  }

  function remove(service: LookupService, rawId: string, res: ServerResponse): void {
    try {
      service.remove(decodeId(rawId));
      send(res, 200, OK_BODY, TEXT);
    } catch (error) {
      fail(res, failure(error, "delete"));
    }
  }

  function list(service: LookupService, res: ServerResponse): void {
    try {
      const ids = service.list();
      send(res, 200, Buffer.from(ids.length === 0 ? "" : `${ids.join("\n")}\n`), TEXT);
    } catch (error) {
      fail(res, failure(error, "list"));
    }
  }

  function route(req: IncomingMessage, res: ServerResponse): void {
    const url = req.url ?? "/";
    const query = url.indexOf("?");
    let path = query === -1 ? url : url.slice(0, query);
    if (path.length > 1 && path.charCodeAt(path.length - 1) === 47 /* / */)
      path = path.slice(0, -1);
    const method = req.method;

    if (path === "/healthz" && method === "GET") {
      send(res, 200, OK_BODY, TEXT);
      return;
    }
    let endpoint: "lookup" | "store" | "delete" | "list" | "metrics" | undefined;
    let rawId = "";
    if (method === "GET" && (path === "/lookup" || path.startsWith("/lookup/"))) {
      endpoint = "lookup";
      rawId = path.slice(8);
    } else if (method === "POST" && (path === "/store" || path.startsWith("/store/"))) {
      endpoint = "store";
      rawId = path.slice(7);
    } else if (method === "DELETE" && (path === "/delete" || path.startsWith("/delete/"))) {
      endpoint = "delete";
      rawId = path.slice(8);
    } else if (method === "GET" && path === "/list") {
      endpoint = "list";
    } else if (method === "GET" && path === "/metrics" && metrics) {
      endpoint = "metrics";
    }
    if (endpoint === undefined) {
      send(res, 404, NOT_FOUND_BODY, JSON_TYPE);
      return;
    }
    if (!authorized(req)) {
      logger.info(`${endpoint}: unauthorized`, {
        event: "auth",
        endpoint,
        outcome: "unauthorized",
      });
      if (endpoint === "store") res.setHeader("Connection", "close");
      send(res, 401, UNAUTHORIZED_BODY, JSON_TYPE);
      return;
    }
    if (service === undefined) {
      // Still opening (serve listens before the cache is loaded): answer once it is.
      const waiting = endpoint;
      track(
        opened.then(
          (ready) => answer(ready, waiting, rawId, req, res),
          (error: unknown) => fail(res, failure(error, waiting)),
        ),
      );
      return;
    }
    answer(service, endpoint, rawId, req, res);
  }

  function answer(
    service: LookupService,
    endpoint: "lookup" | "store" | "delete" | "list" | "metrics",
    rawId: string,
    req: IncomingMessage,
    res: ServerResponse,
  ): void {
    switch (endpoint) {
      case "lookup":
        track(lookup(service, rawId, res));
        return;
      case "store":
        track(store(service, rawId, req, res));
        return;
      case "delete":
        remove(service, rawId, res);
        return;
      case "list":
        list(service, res);
        return;
      case "metrics":
        track(metricsAnswer(res));
        return;
    }
  }

  async function metricsAnswer(res: ServerResponse): Promise<void> {
    // Describe cache.enc as it is on disk now, not as of the last lookup: setup waits for
    // the new file's written_at here before it restarts workloads.
    await cache?.reloadIfChanged().catch(() => false);
    send(
      res,
      200,
      Buffer.from(metrics!.render(cache?.stats(), wallClock())),
      "text/plain; version=0.0.4; charset=utf-8",
    );
  }

  function track(work: Promise<void>): void {
    active++;
    work
      .catch((error: unknown) => {
        // Handlers answer their own errors; this is the last line against a crash.
        logger.error("request handler failed", { event: "request", error: errorMessage(error) });
      })
      .finally(() => {
        active--;
        if (active === 0) for (const wake of idle.splice(0)) wake();
      });
  }

  /** Resolves once no tracked request is running. */
  function settled(): Promise<void> {
    if (active === 0) return Promise.resolve();
    return new Promise((resolve) => idle.push(resolve));
  }

  const server = createServer(
    {
      // A local socket: clients send small requests at once, or not at all.
      headersTimeout: 10_000,
      requestTimeout: 30_000,
      keepAliveTimeout: 5_000,
    },
    (req, res) => {
      res.on("error", (error) => {
        logger.debug("client hung up before the answer was sent", {
          event: "request",
          error: errorMessage(error),
        });
      });
      try {
        route(req, res);
      } catch (error) {
        if (!res.headersSent) fail(res, failure(error, "request"));
      }
    },
  );

  server.on("clientError", (error: NodeJS.ErrnoException, socket: Socket) => {
    if (isHangup(error) || !socket.writable) {
      logger.debug("client hung up", { event: "request", error: error.code ?? error.message });
      socket.destroy();
      return;
    }
    logger.debug("malformed request", { event: "request", error: error.code ?? error.message });
    socket.end(BAD_REQUEST_RESPONSE);
  });

  async function removeStale(path: string): Promise<void> {
    const existing = lstatSync(path, { throwIfNoEntry: false });
    if (!existing) return;
    if (!existing.isSocket()) {
      throw new PsiError("server.socket_path_taken", `${path} exists and is not a socket`, {
        hint: "remove it or choose another path with --socket / PSI_SOCKET",
      });
    }
    const probe = await probeSocket(path);
    if (probe !== "stale") {
      throw new PsiError(
        "server.socket_in_use",
        `another process is already serving ${path}${probe === "alive" ? "" : ` (${probe})`}`,
        {
          hint: "stop the other psi serve (systemctl stop psi-secrets) or choose another path with --socket",
        },
      );
    }
    unlinkSync(path);
    logger.debug(`removed stale socket ${path}`, { event: "listen", path });
  }

  function startListening(
    handle: { path: string; backlog: number } | { fd: number },
  ): Promise<void> {
    return new Promise((done, reject) => {
      const onError = (error: Error) => reject(error);
      server.once("error", onError);
      server.once("listening", () => {
        server.off("error", onError);
        done();
      });
      if ("fd" in handle) {
        server.listen({ fd: handle.fd });
        return;
      }
      // bind(2) happens synchronously inside listen(): with this umask the socket is
      // created 0600, so there is no window in which others could connect.
      const previous = process.umask(0o177);
      try {
        server.listen({ path: handle.path, backlog: handle.backlog });
      } finally {
        process.umask(previous);
      }
    });
  }

  return {
    server,
    get path() {
      return boundPath;
    },
    inFlight: () => active,
    setToken(token) {
      tokenDigest = digestOf(token);
    },
    async listen(target) {
      if ("fd" in target) {
        try {
          await startListening({ fd: target.fd });
        } catch (error) {
          throw new PsiError(
            "server.listen_failed",
            `cannot listen on inherited descriptor ${target.fd}: ${errorMessage(error)}`,
            {
              cause: error,
              hint: "the socket unit must pass one stream socket (ListenStream=) to psi serve",
            },
          );
        }
        return;
      }
      const path = resolve(target.path);
      const dir = dirname(path);
      try {
        // Created 0700; an existing directory (RuntimeDirectory=) is left as it is.
        await ensureDir(dir, 0o700);
        await removeStale(path);
        await startListening({ path, backlog: options.backlog ?? 1024 });
        chmodSync(path, 0o600);
      } catch (error) {
        if (isPsiError(error)) throw error;
        throw new PsiError(
          "server.listen_failed",
          `cannot listen on ${path}: ${errorMessage(error)}`,
          {
            cause: error,
            hint: "check that the directory is writable by this user, or choose another path with --socket",
          },
        );
      }
      boundPath = path;
      boundIno = statSync(path).ino;
    },
    close() {
      closed ??= new Promise<void>((done) => {
        closing = true;
        const timer = setTimeout(() => {
          logger.warn(`requests still running after ${drainTimeoutMs} ms; closing them`, {
            event: "shutdown",
            in_flight: active,
          });
          // Abort the provider calls first: their requests then answer (502, Connection:
          // close) instead of seeing a reset, and finish before providers are closed.
          shutdown.abort();
          const cut = setTimeout(() => server.closeAllConnections(), ABORT_GRACE_MS);
          cut.unref();
          void settled().then(() => {
            clearTimeout(cut);
            server.closeAllConnections();
          });
        }, drainTimeoutMs);
        timer.unref();
        const finish = () => {
          clearTimeout(timer);
          service?.close();
          if (boundPath !== undefined) {
            // libuv unlinks the path on close; remove it ourselves only if it is still ours.
            try {
              if (lstatSync(boundPath, { throwIfNoEntry: false })?.ino === boundIno)
                unlinkSync(boundPath);
            } catch {
              // gone already
            }
          }
          done();
        };
        if (!server.listening) {
          finish();
          return;
        }
        server.close(() => finish());
        server.closeIdleConnections();
      });
      return closed;
    },
  };
}
