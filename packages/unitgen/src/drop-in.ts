import type { RenderedFile } from "./render.js";

/** Python's `sorted()` order: by code point, not by UTF-16 unit. */
function byCodePoint(a: string, b: string): number {
  const x = [...a].map((c) => c.codePointAt(0)!);
  const y = [...b].map((c) => c.codePointAt(0)!);
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i]! - y[i]!;
  return x.length - y.length;
}

/** `<workload>.container.d/50-secrets.conf`, relative to systemd_dir; `name@` stays `name@` (one drop-in for all instances). */
export function secretsDropInPath(workload: string): string {
  return `${workload}.container.d/50-secrets.conf`;
}

/**
 * The workload drop-in setup writes (SPEC §9), byte-compatible with the reference: an
 * optional `[Unit]` ordering after `dependsOn`, then one `Secret=` per key, sorted,
 * naming the Podman secret `<workload>--<KEY>` and exposing it as `$KEY`.
 */
export function renderSecretsDropIn(options: {
  workload: string;
  keys: Iterable<string>;
  dependsOn?: readonly string[] | undefined;
}): RenderedFile {
  const { workload } = options;
  const lines: string[] = [];
  const deps = options.dependsOn ?? [];
  if (deps.length > 0)
    lines.push("[Unit]", `After=${deps.join(" ")}`, `Wants=${deps.join(" ")}`, "");
  lines.push("[Container]");
  for (const key of [...new Set(options.keys)].sort(byCodePoint)) {
    lines.push(`Secret=${workload}--${key},type=env,target=${key}`);
  }
  return { path: secretsDropInPath(workload), kind: "quadlet", text: `${lines.join("\n")}\n` };
}
