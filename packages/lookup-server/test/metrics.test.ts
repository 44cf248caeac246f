import type { CacheStats } from "@psi/cache";
import { describe, expect, it } from "vitest";
import { createMetrics, parsePrometheus } from "../src/index.js";

// The parser reads what the renderer writes: one exposition format, both directions.

function stats(overrides: Partial<CacheStats>): CacheStats {
  return {
    path: "/x/cache.enc",
    backend: true,
    loaded: true,
    fileExists: true,
    fileEntries: 0,
    memoryEntries: 0,
    writtenAt: undefined,
    loadedAt: undefined,
    legacy: false,
    lastError: undefined,
    degraded: undefined,
    ...overrides,
  };
}

describe("parsePrometheus reads createMetrics().render()", () => {
  it("round-trips counters, histograms and gauges, with escaped labels", () => {
    const metrics = createMetrics();
    metrics.lookup("file", "ok");
    metrics.lookup("file", "ok");
    metrics.lookup("provider", "not_found");
    metrics.providerLatency('in"fi\\sical\nx', 0.02);
    metrics.providerLatency('in"fi\\sical\nx', 0.2);
    const text = metrics.render(
      stats({ fileEntries: 7, memoryEntries: 2, writtenAt: 1_000, degraded: 'bad "key"' }),
      1_500_000,
    );
    const samples = parsePrometheus(text);
    const one = (name: string, labels: Record<string, string> = {}) =>
      samples.find(
        (s) =>
          s.name === name &&
          Object.entries(labels).every(([key, value]) => s.labels[key] === value),
      )?.value;

    expect(one("psi_lookups_total", { source: "file", outcome: "ok" })).toBe(2);
    expect(one("psi_lookups_total", { source: "provider", outcome: "not_found" })).toBe(1);
    const provider = 'in"fi\\sical\nx';
    expect(one("psi_provider_lookup_duration_seconds_count", { provider })).toBe(2);
    expect(one("psi_provider_lookup_duration_seconds_sum", { provider })).toBeCloseTo(0.22);
    expect(one("psi_provider_lookup_duration_seconds_bucket", { provider, le: "0.025" })).toBe(1);
    expect(one("psi_provider_lookup_duration_seconds_bucket", { provider, le: "+Inf" })).toBe(2);
    expect(one("psi_cache_entries", { origin: "file" })).toBe(7);
    expect(one("psi_cache_entries", { origin: "memory" })).toBe(2);
    expect(samples.find((s) => s.name === "psi_cache_degraded")).toEqual({
      name: "psi_cache_degraded",
      labels: { reason: 'bad "key"' },
      value: 1,
    });
    expect(one("psi_cache_written_timestamp_seconds")).toBe(1_000);
    expect(one("psi_cache_age_seconds")).toBe(500);
    // Every sample line the renderer wrote was read back (only comments are skipped).
    const sampleLines = text.split("\n").filter((line) => line !== "" && !line.startsWith("#"));
    expect(samples).toHaveLength(sampleLines.length);
  });

  it("skips comments and lines that are not samples", () => {
    const samples = parsePrometheus(
      [
        "# HELP x y",
        'psi_lookups_total{source="file",outcome="ok"} 3',
        'odd{label="a\\"b\\\\c"} 1.5',
        "psi_cache_age_seconds 12",
        "garbage line",
        "not_a_number NaNx",
      ].join("\n"),
    );
    expect(samples).toEqual([
      { name: "psi_lookups_total", labels: { source: "file", outcome: "ok" }, value: 3 },
      { name: "odd", labels: { label: 'a"b\\c' }, value: 1.5 },
      { name: "psi_cache_age_seconds", labels: {}, value: 12 },
    ]);
  });
});
