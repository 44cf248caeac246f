import { type FSWatcher, readdirSync, unlinkSync, watch } from "node:fs";
import { join } from "node:path";
import type { CacheStore } from "@psi/cache";
import type { Logger, Mapping, Provider } from "@psi/core";
import {
  ensureDir,
  errorMessage,
  isPsiError,
  isReservedStateFile,
  PsiError,
  parseMapping,
  readMappingFileSync,
  secretIdProblem,
  writeFileAtomic,
} from "@psi/core";
import { canonicalMapping } from "@psi/envelope";
import type { LookupOutcome, LookupSource } from "./metrics.js";

/** Error codes of the lookup protocol (SPEC §4.1) besides `ok`. */
export type LookupFailureCode = Exclude<LookupOutcome, "ok">;

/**
 * A lookup-protocol failure: the HTTP status and error code the socket answers with
 * (SPEC §4.1), and a detail that never contains a secret value. The one-shot driver
 * commands print the message and exit 1. PsiError code: `lookup.<failure>`.
 */
export class LookupFailure extends PsiError {
  readonly status: number;
  readonly failure: LookupFailureCode;
  /** Where the answer would have come from when it failed. */
  readonly source: LookupSource;

  constructor(
    status: number,
    failure: LookupFailureCode,
    detail: string,
    source: LookupSource = "none",
  ) {
    super(`lookup.${failure}`, detail);
    this.name = "LookupFailure";
    this.status = status;
    this.failure = failure;
    this.source = source;
  }
}

/** True when `error` is a {@link LookupFailure}. */
export function isLookupFailure(error: unknown): error is LookupFailure {
  return error instanceof LookupFailure;
}

/** Options of {@link createLookupService}. */
export interface LookupServiceOptions {
  /** Where mapping files live. */
  stateDir: string;
  /** The providers that opened (a provider missing here answers `unknown_provider` on a miss). */
  providers: ReadonlyMap<string, Provider>;
  /** The cache; without one every lookup goes to the provider. */
  cache?: CacheStore | undefined;
  logger: Logger;
  /** Aborts provider calls in flight (shutdown). */
  signal?: AbortSignal | undefined;
  /** Called after each provider call with its duration (metrics). */
  onProviderLatency?: ((provider: string, seconds: number) => void) | undefined;
  /**
   * Keep parsed mappings in memory and drop one when inotify reports its file changed
   * (long-running serve): a hit then costs no file-system call. Entries are re-read after
   * 10 s regardless, and a failed watch falls back to reading every time.
   */
  watchStateDir?: boolean;
  /** Clock in milliseconds for the mapping memo; performance.now by default. */
  now?: () => number;
}

/** A successful lookup. */
export interface LookupAnswer {
  value: Uint8Array;
  source: Exclude<LookupSource, "none">;
  /** The mapping's provider. */
  provider: string;
  /** True when the value came from a provider call another lookup had already started. */
  shared: boolean;
}

/**
 * The shell driver's semantics (SPEC §3, §4.3), without HTTP: the lookup socket and the
 * one-shot `psi secret store|lookup|delete|list` commands both run on this.
 */
export interface LookupService {
  /** Throws a 400 `invalid_secret_id` LookupFailure unless `id` is a usable secret ID. */
  checkId(id: string): void;
  /** Mapping → cache (reloaded when cache.enc changed) → provider; concurrent misses share one call. */
  lookup(id: string): Promise<LookupAnswer>;
  /** Writes the mapping bytes to `state_dir/<id>` (0600, atomic). */
  store(id: string, mapping: Uint8Array): Promise<void>;
  /** Removes `state_dir/<id>`; false when it was absent (not an error). */
  remove(id: string): boolean;
  /** Secret IDs with a mapping, sorted (PSI's own files never listed). */
  list(): string[];
  /** Stops watching state_dir (serve's shutdown). */
  close(): void;
}

/** How long a remembered mapping is trusted without a watch event (the watch's safety net). */
const MAPPING_MEMO_TTL_MS = 10_000;
/** At most this many remembered mappings (state_dir holds one file per Podman secret). */
const MAPPING_MEMO_MAX = 100_000;

/** Secret values never reach this: details come from our own messages, and are bounded. */
function clip(text: string, max = 300): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

/** Creates the lookup service over a state directory, the opened providers and the cache. */
export function createLookupService(options: LookupServiceOptions): LookupService {
  const { stateDir, providers, cache, logger } = options;
  const flights = new Map<string, Promise<Uint8Array>>();
  const now = options.now ?? (() => performance.now());
  let memo: Map<string, { mapping: Mapping; at: number }> | undefined;
  let watcher: FSWatcher | undefined;

  function startWatching(): void {
    if (!options.watchStateDir || watcher !== undefined) return;
    try {
      watcher = watch(stateDir, { persistent: false }, (_event, filename) => {
        if (filename === null) memo?.clear();
        else memo?.delete(String(filename));
      });
      watcher.on("error", (error) => {
        logger.debug("state_dir watch failed; mappings are read on every lookup", {
          event: "lookup",
          error: errorMessage(error),
        });
        memo = undefined;
        watcher?.close();
        watcher = undefined;
      });
      memo = new Map();
    } catch {
      // state_dir missing (retried after the first store) or inotify exhausted: plain reads.
      memo = undefined;
      watcher = undefined;
    }
  }
  startWatching();

  function checkId(id: string): void {
    const problem = secretIdProblem(id);
    if (problem !== undefined) {
      throw new LookupFailure(400, "invalid_secret_id", `invalid secret ID: ${problem}`);
    }
    if (isReservedStateFile(id)) {
      throw new LookupFailure(
        400,
        "invalid_secret_id",
        "invalid secret ID: the name is reserved for PSI's own files",
      );
    }
  }

  function readMapping(id: string): Mapping {
    const remembered = memo?.get(id);
    if (remembered !== undefined && now() - remembered.at < MAPPING_MEMO_TTL_MS)
      return remembered.mapping;
    const mapping = readMappingFile(id);
    if (memo !== undefined) {
      if (memo.size >= MAPPING_MEMO_MAX) memo.clear();
      memo.set(id, { mapping, at: now() });
    }
    return mapping;
  }

  function readMappingFile(id: string): Mapping {
    let bytes: Buffer | undefined;
    try {
      // Synchronous: four thread-pool round trips would cost more than the read itself and
      // lengthen the hit path. Never follows a symlink nor waits on a FIFO or device.
      bytes = readMappingFileSync(stateDir, id);
    } catch (error) {
      const code = isPsiError(error) ? error.code : undefined;
      if (code === "fs.symlink" || code === "fs.not_regular" || code === "fs.too_large") {
        logger.warn(`lookup ${id}: ${errorMessage(error)}`, {
          event: "lookup",
          secret_id: id,
          outcome: "corrupt_mapping",
          code,
          ...(isPsiError(error) && error.hint ? { hint: error.hint } : {}),
        });
        throw new LookupFailure(500, "corrupt_mapping", clip(errorMessage(error)));
      }
      logger.error(`cannot read the mapping of secret ${id}`, {
        event: "lookup",
        secret_id: id,
        outcome: "internal_error",
        error: errorMessage(error),
      });
      throw new LookupFailure(502, "internal_error", `cannot read the mapping of secret ${id}`);
    }
    if (bytes === undefined)
      throw new LookupFailure(404, "not_found", `no mapping for secret ${id}`);
    try {
      return parseMapping(bytes, `mapping ${id}`);
    } catch (error) {
      throw new LookupFailure(500, "corrupt_mapping", clip(errorMessage(error)));
    }
  }

  function fetchShared(
    mapping: Mapping,
    provider: Provider,
  ): { flight: Promise<Uint8Array>; shared: boolean } {
    const key = Buffer.from(canonicalMapping(mapping)).toString("latin1");
    const existing = flights.get(key);
    if (existing) return { flight: existing, shared: true };
    const started = performance.now();
    const flight = provider
      .lookup(mapping, options.signal ? { signal: options.signal } : {})
      .then((value) => {
        cache?.remember(mapping, value);
        return value;
      })
      .finally(() => {
        flights.delete(key);
        options.onProviderLatency?.(provider.name, (performance.now() - started) / 1000);
      });
    flights.set(key, flight);
    return { flight, shared: false };
  }

  async function lookup(id: string): Promise<LookupAnswer> {
    let source: LookupSource = "none";
    let mapping: Mapping | undefined;
    try {
      checkId(id);
      mapping = readMapping(id);
      if (cache) {
        // A hit never waits: a reload in progress (or a stuck one) must not hold up the
        // answer. A miss is about to ask the provider anyway, so it first lets a reload of a
        // changed file finish (bounded by the store's reload timeout): a value setup has just
        // written is then served even while the provider is down.
        const reloading = cache.reloadIfChanged();
        const hit =
          cache.lookup(mapping) ?? ((await reloading) ? cache.lookup(mapping) : undefined);
        if (hit) {
          if (logger.enabled("debug")) {
            logger.debug(`lookup ${id}: cache hit`, {
              event: "lookup",
              secret_id: id,
              provider: mapping.provider,
              source: hit.source,
              outcome: "ok",
            });
          }
          return {
            value: hit.value,
            source: hit.source,
            provider: mapping.provider,
            shared: false,
          };
        }
      }
      const provider = providers.get(mapping.provider);
      if (!provider) {
        throw new LookupFailure(
          500,
          "unknown_provider",
          `provider "${mapping.provider}" is not configured or failed to open, and the value is not cached`,
        );
      }
      source = "provider";
      const started = performance.now();
      const { flight, shared } = fetchShared(mapping, provider);
      let value: Uint8Array;
      try {
        value = await flight;
      } catch (error) {
        const detail = isPsiError(error)
          ? clip(error.message)
          : `provider ${provider.name} failed: ${clip(errorMessage(error), 200)}`;
        logger.warn(`lookup ${id}: provider ${provider.name} failed`, {
          event: "lookup",
          secret_id: id,
          provider: provider.name,
          source,
          outcome: "provider_error",
          error: detail,
          ...(isPsiError(error) ? { code: error.code } : {}),
        });
        throw new LookupFailure(502, "provider_error", detail, source);
      }
      logger.info(`lookup ${id}: cache miss, answered by ${provider.name}`, {
        event: "lookup",
        secret_id: id,
        provider: provider.name,
        source,
        outcome: "ok",
        shared,
        duration_ms: Math.round((performance.now() - started) * 10) / 10,
      });
      return { value, source, provider: provider.name, shared };
    } catch (error) {
      if (!(error instanceof LookupFailure)) {
        logger.error(`lookup ${id}: internal error`, {
          event: "lookup",
          secret_id: id,
          outcome: "internal_error",
          error: errorMessage(error),
        });
        throw new LookupFailure(
          502,
          "internal_error",
          "internal error; see the psi serve log",
          source,
        );
      }
      if (error.failure !== "provider_error" && error.failure !== "internal_error") {
        logger.info(`lookup ${id}: ${error.failure}`, {
          event: "lookup",
          secret_id: id,
          ...(mapping ? { provider: mapping.provider } : {}),
          outcome: error.failure,
          error: error.message,
        });
      }
      throw error.source === source
        ? error
        : new LookupFailure(error.status, error.failure, error.message, source);
    }
  }

  return {
    checkId,
    lookup,
    async store(id, mapping) {
      checkId(id);
      memo?.delete(id);
      try {
        await ensureDir(stateDir, 0o700);
        await writeFileAtomic(join(stateDir, id), mapping, { mode: 0o600 });
        memo?.delete(id);
        startWatching();
      } catch (error) {
        logger.error(`store ${id}: cannot write the mapping`, {
          event: "store",
          secret_id: id,
          outcome: "internal_error",
          error: errorMessage(error),
        });
        throw new LookupFailure(502, "internal_error", `cannot write the mapping of secret ${id}`);
      }
      logger.info(`stored mapping ${id}`, {
        event: "store",
        secret_id: id,
        bytes: mapping.byteLength,
      });
    },
    remove(id) {
      checkId(id);
      memo?.delete(id);
      try {
        unlinkSync(join(stateDir, id));
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === "ENOENT" || code === "ENOTDIR") return false;
        logger.error(`delete ${id}: cannot remove the mapping`, {
          event: "delete",
          secret_id: id,
          outcome: "internal_error",
          error: errorMessage(error),
        });
        throw new LookupFailure(502, "internal_error", `cannot remove the mapping of secret ${id}`);
      }
      logger.info(`deleted mapping ${id}`, { event: "delete", secret_id: id });
      return true;
    },
    list() {
      try {
        return readdirSync(stateDir, { withFileTypes: true })
          .filter(
            (entry) =>
              entry.isFile() &&
              !isReservedStateFile(entry.name) &&
              secretIdProblem(entry.name) === undefined,
          )
          .map((entry) => entry.name)
          .sort();
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
        logger.error("list: cannot read state_dir", { event: "list", error: errorMessage(error) });
        throw new LookupFailure(502, "internal_error", "cannot read state_dir");
      }
    },
    close() {
      watcher?.close();
      watcher = undefined;
      memo = undefined;
    },
  };
}
