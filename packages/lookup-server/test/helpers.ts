import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { CacheStore } from "@psi/cache";
import type { Mapping, Provider, ProviderCallOptions } from "@psi/core";
import { PsiError } from "@psi/core";
import { tempDir } from "@psi/testkit/tmp";
import { captureLogger, type UnixResponse, unixRequest } from "@psi/testkit/unix-http";
import { createLookupServer, type LookupServer, type LookupServerOptions } from "../src/index.js";

/**
 * A provider for the lookup seam: answers from a table keyed by `mapping.key`, counts its
 * calls, and can hold every answer until `release()` (to make misses overlap).
 */
export interface TableProvider extends Provider {
  calls: number;
  values: Map<string, Uint8Array | Error>;
  hold(): void;
  release(): void;
}

export function tableProvider(
  name: string,
  entries: Record<string, string | Error> = {},
): TableProvider {
  let gate: Promise<void> | undefined;
  let open: (() => void) | undefined;
  const provider: TableProvider = {
    name,
    calls: 0,
    values: new Map(
      Object.entries(entries).map(([k, v]) => [k, typeof v === "string" ? Buffer.from(v) : v]),
    ),
    async open() {},
    async close() {},
    async lookup(mapping: Mapping, _options?: ProviderCallOptions) {
      provider.calls++;
      if (gate) await gate;
      const value = provider.values.get(String(mapping["key"]));
      if (value === undefined) {
        throw new PsiError(
          "provider.not_found",
          `${name}: secret ${String(mapping["key"])} not found`,
        );
      }
      if (value instanceof Error) throw value;
      return value;
    },
    hold() {
      gate = new Promise((resolve) => {
        open = resolve;
      });
    },
    release() {
      open?.();
      gate = undefined;
    },
  };
  return provider;
}

/** An Infisical-style mapping for key `key`, in the bytes setup writes. */
export function mappingFor(key: string, provider = "infisical"): Record<string, string> {
  return { provider, project: "proj", path: "/app", key };
}

export interface Harness {
  dir: string;
  stateDir: string;
  socket: string;
  server: LookupServer;
  log: ReturnType<typeof captureLogger>;
  request(options: {
    method?: string;
    path: string;
    headers?: Record<string, string>;
    body?: string | Uint8Array;
  }): Promise<UnixResponse>;
  writeMapping(id: string, mapping: Record<string, unknown> | string): Promise<void>;
  stop(): Promise<void>;
}

/** A lookup server on a fresh socket in a fresh temp dir. */
export async function startServer(
  options: Partial<Omit<LookupServerOptions, "stateDir" | "logger">> & { cache?: CacheStore } = {},
): Promise<Harness> {
  const tmp = await tempDir("psi-lookup-");
  const stateDir = join(tmp.path, "state");
  await mkdir(stateDir, { mode: 0o700 });
  const socket = join(tmp.path, "run", "psi.sock");
  const log = captureLogger("debug");
  const server = createLookupServer({
    providers: new Map(),
    ...options,
    stateDir,
    logger: log.logger,
  });
  await server.listen({ path: socket });
  return {
    dir: tmp.path,
    stateDir,
    socket,
    server,
    log,
    request: (req) => unixRequest(socket, req),
    writeMapping: (id, mapping) =>
      writeFile(
        join(stateDir, id),
        typeof mapping === "string" ? mapping : JSON.stringify(mapping),
        { mode: 0o600 },
      ),
    async stop() {
      await server.close();
      await tmp.cleanup();
    },
  };
}
