import type { DaemonReloadOutcome } from "./daemon-reload.js";
import type { RestartResult } from "./restart.js";

/** One problem setup met, with where it happened; never holds a secret value. */
export interface SetupIssue {
  /** What setup was doing: talking to the provider, fetching a source, registering in Podman, writing the drop-in. */
  stage: "provider" | "fetch" | "register" | "drop-in" | "podman";
  /** Stable error code (`provider.unreachable`, `podman.api_error`, ...). */
  code: string;
  message: string;
  hint?: string;
  /** The workload source that failed (stage `fetch`). */
  source?: Readonly<Record<string, unknown>>;
  /** The Podman secret name that failed (stage `register`). */
  secret?: string;
}

/** A Podman secret of a workload that this fetch no longer has (SPEC §9 drift). */
export interface DriftEntry {
  workload: string;
  /** The Podman secret name, `<workload>--<KEY>`. */
  secret: string;
  key: string;
  /** How to resolve it. */
  fix: string;
}

/** What happened to one workload. */
export interface WorkloadOutcome {
  name: string;
  provider: string;
  /**
   * `ok`: fetched, registered and the drop-in is current; `failed`: see `errors`;
   * `store-only`: the provider has nothing to fetch (nitrokeyhsm, local).
   */
  status: "ok" | "failed" | "store-only";
  /** True when every source of the workload was listed (its values went to the cache). */
  fetched: boolean;
  /** Every key of the merged fetch, sorted. */
  keys: string[];
  /** Keys by what registration did: new secret, deleted and re-created, already current. */
  created: string[];
  replaced: string[];
  unchanged: string[];
  /**
   * Keys the workload had before, kept (Podman secret, drop-in, cached value) because a
   * source listed no secrets and emptying was not allowed (`allow_empty`).
   */
  kept: string[];
  /** The drop-in, when it was written or found current. */
  dropIn?: { path: string; written: boolean };
  drift: DriftEntry[];
  errors: SetupIssue[];
  /** For store-only workloads: how their secrets are created. */
  note?: string;
  /** Which keys' values differ from the previous cache.enc (names only), for fetched workloads. */
  changes?: WorkloadChanges;
  /** With `on_change: restart`: the unit restarted when values change. */
  restartUnit?: string;
  /** The units restarted because values changed (`on_change: restart`), in restart order. */
  restarts?: RestartResult[];
}

/**
 * What changed in a workload since the previous cache.enc: `changed` keys had another
 * value, `added` keys had none. Unknown when there is nothing to compare with (no cache,
 * no previous file, or a file that held none of the workload's values).
 */
export type WorkloadChanges =
  | { known: true; changed: string[]; added: string[] }
  | { known: false; reason: string };

/** What setup did with the cache file (SPEC §6.5, §9). */
export type CacheOutcome =
  | {
      status: "written";
      path: string;
      entries: number;
      added: number;
      updated: number;
      unchanged: number;
      pruned: number;
      /** True when the run was complete and stale entries were removed. */
      pruneApplied: boolean;
      /** Why the previous file could not be used (it was replaced by a fresh one). */
      previousUnreadable?: string;
      /** The file's `written_at` (Unix seconds): serve has the new values once it loaded this one. */
      writtenAt: number;
    }
  /** A partial run that fetched nothing new: the file is left as it was. */
  | { status: "unchanged"; path: string; reason: string }
  /** Nothing was written (nothing fetched, or every fetch failed): the file is untouched. */
  | { status: "skipped"; reason: string }
  /** No cache configured. */
  | { status: "disabled"; reason: string }
  /** The backend could not be opened: a warning, lookups go to the live provider. */
  | { status: "unavailable"; code: string; message: string; hint?: string }
  /** Writing failed: an error (the old file is untouched, writes are atomic). */
  | { status: "failed"; code: string; message: string; hint?: string };

/** Counters for progress display; totals grow as sources answer. */
export interface SetupProgress {
  sources: { done: number; total: number };
  secrets: { done: number; total: number };
  workloads: { done: number; total: number };
}

/** Everything a setup run did, in a deterministic order (workloads in config order, keys sorted). */
export interface SetupResult {
  /** True when nothing failed and nothing drifted: the exit status of `psi setup`. */
  ok: boolean;
  /** The `--provider` filter, when given. */
  provider?: string;
  workloads: WorkloadOutcome[];
  /** Unique sources listed, how many workload references they served, how many failed. */
  sources: { listed: number; references: number; failed: number };
  drift: DriftEntry[];
  cache: CacheOutcome;
  daemonReload: DaemonReloadOutcome;
  /** Problems not tied to one workload (the Podman API being unreachable). */
  errors: SetupIssue[];
}
