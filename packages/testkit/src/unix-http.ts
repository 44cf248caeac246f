import { type Agent, request } from "node:http";
import type { Logger, LogLevel } from "@psi/core";
import { createLogger } from "@psi/core";

/** One HTTP answer read to the end. */
export interface UnixResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  text: string;
  /** The client-side socket's local identity, to tell keep-alive reuse from new connections. */
  socketId: number;
}

let socketIds = 0;
const ids = new WeakMap<object, number>();

/** Sends one request over a Unix socket (a fresh connection unless `agent` keeps one alive). */
export function unixRequest(
  socketPath: string,
  options: {
    method?: string;
    path: string;
    headers?: Record<string, string | number>;
    body?: Uint8Array | string;
    agent?: Agent;
  },
): Promise<UnixResponse> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        socketPath,
        method: options.method ?? "GET",
        path: options.path,
        headers: options.headers,
        agent: options.agent ?? false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("error", reject);
        res.on("end", () => {
          const body = Buffer.concat(chunks);
          const socket = req.socket as object;
          let id = ids.get(socket);
          if (id === undefined) {
            id = ++socketIds;
            ids.set(socket, id);
          }
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body,
            text: body.toString("utf8"),
            socketId: id,
          });
        });
      },
    );
    req.on("error", reject);
    if (options.body !== undefined) req.end(options.body);
    else req.end();
  });
}

/** One parsed JSON log line. */
export type LogRecord = { level: string; msg: string; event?: string } & Record<string, unknown>;

/** A real logger (JSON lines) writing into memory, for asserting on what was logged. */
export function captureLogger(level: LogLevel = "debug"): {
  logger: Logger;
  records: () => LogRecord[];
  text: () => string;
} {
  let text = "";
  const logger = createLogger({
    level,
    format: "json",
    stream: {
      write: (chunk: string) => {
        text += chunk;
      },
    },
  });
  return {
    logger,
    text: () => text,
    records: () =>
      text
        .split("\n")
        .filter((line) => line.trim() !== "")
        .map((line) => JSON.parse(line) as LogRecord),
  };
}
