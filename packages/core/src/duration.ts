// systemd time spans (systemd.time(7)): the refresh timer hands these to OnUnitActiveSec=
// and RandomizedDelaySec=, and TLS ttl/renew_before use the same notation.
const UNIT_SECONDS = new Map<string, number>(
  Object.entries({
    us: 1e-6,
    usec: 1e-6,
    µs: 1e-6,
    ms: 1e-3,
    msec: 1e-3,
    "": 1,
    s: 1,
    sec: 1,
    second: 1,
    seconds: 1,
    m: 60,
    min: 60,
    minute: 60,
    minutes: 60,
    h: 3600,
    hr: 3600,
    hour: 3600,
    hours: 3600,
    d: 86_400,
    day: 86_400,
    days: 86_400,
    w: 604_800,
    week: 604_800,
    weeks: 604_800,
    M: 2_629_800,
    month: 2_629_800,
    months: 2_629_800,
    y: 31_557_600,
    year: 31_557_600,
    years: 31_557_600,
  }),
);

// One "<number><unit>" part at a time (sticky): linear, unlike a nested-quantifier regex.
const PART = /\s*(\d+(?:\.\d+)?)\s*([a-zA-Zµ]*)\s*/y;

/**
 * Seconds in a systemd time span such as `1h 30min`, `90d` or `300` (bare numbers are
 * seconds); undefined when `text` is not one.
 */
export function durationSeconds(text: string | number): number | undefined {
  if (typeof text === "number") return Number.isFinite(text) && text >= 0 ? text : undefined;
  let total = 0;
  let parts = 0;
  PART.lastIndex = 0;
  while (PART.lastIndex < text.length) {
    const start = PART.lastIndex;
    const match = PART.exec(text);
    if (match === null || PART.lastIndex === start) return undefined;
    const factor = UNIT_SECONDS.get(match[2] ?? "");
    if (factor === undefined) return undefined;
    total += Number(match[1]) * factor;
    parts++;
  }
  return parts === 0 ? undefined : total;
}

/** True when `text` is a systemd time span {@link durationSeconds} understands. */
export function isDuration(text: string): boolean {
  return durationSeconds(text) !== undefined;
}

/** A short human age for `seconds`: `45s`, `12min`, `3h`, `2d` (rounded, one unit). */
export function formatAge(seconds: number): string {
  if (seconds < 90) return `${seconds}s`;
  const minutes = Math.round(seconds / 60);
  if (minutes < 90) return `${minutes}min`;
  const hours = Math.round(minutes / 60);
  if (hours < 48) return `${hours}h`;
  return `${Math.round(hours / 24)}d`;
}
