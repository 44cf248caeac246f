import { createRequire } from "node:module";
import { setTimeout as sleep } from "node:timers/promises";
import type { Env, Logger, ScopePaths } from "@psi/core";
import { errorMessage } from "@psi/core";
import { parsePrometheus } from "@psi/lookup-server";

// Node 24's ESM facade for node:http reads every export, and three of them are getters
// that load undici (~30 ms on every psi start); require() keeps them lazy.
const { request } = createRequire(import.meta.url)("node:http") as typeof import("node:http");

/** How long one request on the lookup socket may take. */
export const SOCKET_TIMEOUT_MS = 2_000;

/** The lookup socket: an explicit path → `PSI_SOCKET` → the scope default (SPEC §11). */
export function lookupSocketPath(
  flag: string | undefined,
  env: Env,
  paths: Pick<ScopePaths, "socket">,
): string {
  if (flag) return flag;
  const fromEnv = env["PSI_SOCKET"];
  if (fromEnv) return fromEnv;
  return paths.socket;
}

/** One answer on the lookup socket: HTTP status, body, round trip in milliseconds. */
export interface SocketAnswer {
  status: number;
  body: string;
  ms: number;
}

/** One GET on the lookup socket (bounded by a short timeout). */
export function getOnSocket(
  socketPath: string,
  path: string,
  token?: string,
): Promise<SocketAnswer> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const req = request(
      {
        socketPath,
        path,
        method: "GET",
        agent: false,
        headers: token === undefined ? {} : { Authorization: `Bearer ${token}` },
        signal: AbortSignal.timeout(SOCKET_TIMEOUT_MS),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("error", reject);
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            body: Buffer.concat(chunks).toString("utf8"),
            ms: performance.now() - started,
          }),
        );
      },
    );
    req.on("error", reject);
    req.end();
  });
}

/** Why the lookup socket could not be asked, in words for an operator. */
export function socketProblem(error: unknown, socket: string): string {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === "ENOENT") return `not running (no socket at ${socket})`;
  if (code === "ECONNREFUSED")
    return `not running (nothing listens on ${socket}; a stale socket file?)`;
  if (code === "EACCES")
    return `no permission to connect to ${socket} (run as the user that runs psi serve)`;
  if ((error as Error).name === "AbortError" || (error as Error).name === "TimeoutError") {
    return `not answering on ${socket} within ${SOCKET_TIMEOUT_MS} ms`;
  }
  return `cannot reach ${socket}: ${errorMessage(error)}`;
}

/** Options of {@link waitForServeLoad}. */
export interface WaitForServeLoadOptions {
  socket: string;
  token: string | undefined;
  /** `written_at` of the cache file just written, Unix seconds. */
  writtenAt: number;
  logger: Logger;
  /** How long to wait for serve before giving up (with a warning). */
  timeoutMs?: number;
}

/**
 * Waits until the running serve has loaded the cache.enc written at `writtenAt` (its
 * `/metrics` report the file's `written_at`), so a workload restarted next gets the new
 * value. When serve cannot be asked (a setup container without the socket mounted), waits
 * past serve's own stat interval instead.
 */
export async function waitForServeLoad(options: WaitForServeLoadOptions): Promise<void> {
  const { socket, token, writtenAt, logger } = options;
  const timeoutMs = options.timeoutMs ?? 10_000;
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    let answer: SocketAnswer;
    try {
      answer = await getOnSocket(socket, "/metrics", token);
    } catch {
      logger.debug(`cannot ask psi serve at ${socket}; waiting 2 s for it to reload`, {
        event: "setup.restart_wait",
      });
      await sleep(2_000);
      return;
    }
    if (answer.status !== 200) return;
    const loaded = parsePrometheus(answer.body).find(
      (sample) => sample.name === "psi_cache_written_timestamp_seconds",
    )?.value;
    if (loaded !== undefined && loaded >= writtenAt) return;
    await sleep(100);
  }
  logger.warn(
    `psi serve at ${socket} has not loaded the new cache.enc after ${timeoutMs / 1000} s; restarting anyway`,
    { event: "setup.restart_wait" },
  );
}
