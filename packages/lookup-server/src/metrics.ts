import type { CacheStats } from "@psi/cache";

/** Where a lookup's answer came from (or would have): the cache file, memory, the provider. */
export type LookupSource = "file" | "memory" | "provider" | "none";

/** How a lookup ended: `ok` or the error code it answered with. */
export type LookupOutcome =
  | "ok"
  | "invalid_secret_id"
  | "not_found"
  | "corrupt_mapping"
  | "unknown_provider"
  | "provider_error"
  | "internal_error";

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] as const;

interface Histogram {
  counts: number[];
  sum: number;
  count: number;
}

/** Counters for `GET /metrics` (Prometheus text format 0.0.4). */
export interface Metrics {
  lookup(source: LookupSource, outcome: LookupOutcome): void;
  providerLatency(provider: string, seconds: number): void;
  render(cache: CacheStats | undefined, nowMs: number): string;
}

function label(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

/** Creates the in-process counters; cheap enough to update on every lookup. */
export function createMetrics(): Metrics {
  const lookups = new Map<string, number>();
  const latency = new Map<string, Histogram>();
  return {
    lookup(source, outcome) {
      const key = `${source}\u0000${outcome}`;
      lookups.set(key, (lookups.get(key) ?? 0) + 1);
    },
    providerLatency(provider, seconds) {
      let histogram = latency.get(provider);
      if (!histogram) {
        histogram = { counts: LATENCY_BUCKETS.map(() => 0), sum: 0, count: 0 };
        latency.set(provider, histogram);
      }
      for (let i = 0; i < LATENCY_BUCKETS.length; i++) {
        if (seconds <= (LATENCY_BUCKETS[i] as number))
          histogram.counts[i] = (histogram.counts[i] as number) + 1;
      }
      histogram.sum += seconds;
      histogram.count++;
    },
    render(cache, nowMs) {
      const lines: string[] = [
        "# HELP psi_lookups_total Lookups answered, by where the value came from and how it ended.",
        "# TYPE psi_lookups_total counter",
      ];
      for (const [key, count] of [...lookups].sort(([a], [b]) => (a < b ? -1 : 1))) {
        const [source, outcome] = key.split("\u0000") as [string, string];
        lines.push(
          `psi_lookups_total{source="${label(source)}",outcome="${label(outcome)}"} ${count}`,
        );
      }
      lines.push(
        "# HELP psi_provider_lookup_duration_seconds Time of provider lookups on cache misses.",
        "# TYPE psi_provider_lookup_duration_seconds histogram",
      );
      for (const [provider, histogram] of [...latency].sort(([a], [b]) => (a < b ? -1 : 1))) {
        const name = label(provider);
        LATENCY_BUCKETS.forEach((bound, i) => {
          lines.push(
            `psi_provider_lookup_duration_seconds_bucket{provider="${name}",le="${bound}"} ${histogram.counts[i]}`,
          );
        });
        lines.push(
          `psi_provider_lookup_duration_seconds_bucket{provider="${name}",le="+Inf"} ${histogram.count}`,
        );
        lines.push(`psi_provider_lookup_duration_seconds_sum{provider="${name}"} ${histogram.sum}`);
        lines.push(
          `psi_provider_lookup_duration_seconds_count{provider="${name}"} ${histogram.count}`,
        );
      }
      lines.push(
        "# HELP psi_cache_entries Values held in memory, by origin (file = cache.enc, memory = fetched live).",
        "# TYPE psi_cache_entries gauge",
        `psi_cache_entries{origin="file"} ${cache?.fileEntries ?? 0}`,
        `psi_cache_entries{origin="memory"} ${cache?.memoryEntries ?? 0}`,
      );
      if (cache?.backend) {
        const reason =
          cache.degraded === undefined ? "" : `{reason="${label(cache.degraded.slice(0, 200))}"}`;
        lines.push(
          "# HELP psi_cache_degraded 1 when cache.enc on disk cannot be decrypted by the running serve (restart it).",
          "# TYPE psi_cache_degraded gauge",
          `psi_cache_degraded${reason} ${cache.degraded === undefined ? 0 : 1}`,
        );
      }
      if (cache?.writtenAt !== undefined) {
        lines.push(
          "# HELP psi_cache_written_timestamp_seconds When setup wrote the loaded cache file.",
          "# TYPE psi_cache_written_timestamp_seconds gauge",
          `psi_cache_written_timestamp_seconds ${cache.writtenAt}`,
          "# HELP psi_cache_age_seconds Age of the loaded cache file.",
          "# TYPE psi_cache_age_seconds gauge",
          `psi_cache_age_seconds ${Math.max(0, nowMs / 1000 - cache.writtenAt)}`,
        );
      }
      return `${lines.join("\n")}\n`;
    },
  };
}

/** One sample of the exposition: `name{labels} value`. */
export interface MetricSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/**
 * Reads Prometheus text format 0.0.4, the subset {@link Metrics.render} writes (so
 * `psi status` and setup read serve's `/metrics` with the writer's own rules): comments
 * and lines that are not samples are skipped, label escapes undone.
 */
export function parsePrometheus(text: string): MetricSample[] {
  const samples: MetricSample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!match) continue;
    const labels: Record<string, string> = {};
    for (const pair of (match[2] ?? "").matchAll(/([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[pair[1] as string] = (pair[2] as string).replace(/\\(.)/g, (_, c: string) =>
        c === "n" ? "\n" : c,
      );
    }
    const value = Number(match[3]);
    if (Number.isFinite(value)) samples.push({ name: match[1] as string, labels, value });
  }
  return samples;
}
