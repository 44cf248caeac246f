// The one renderer every command's human output shares: counts, ages, columns measured in
// terminal cells, and the progress line.

import { formatAge } from "@psi/core";
import type { DaemonReloadOutcome } from "@psi/setup";
import type { Progress } from "./app.js";

export { formatAge };

const IRREGULAR: Record<string, string> = { entry: "entries", directory: "directories" };

/** `1 secret`, `2 secrets`, `8 entries`: a count with its noun in the right number. */
export function plural(count: number, word: string): string {
  return `${count} ${count === 1 ? word : (IRREGULAR[word] ?? `${word}s`)}`;
}

// East Asian Wide and Fullwidth blocks (Unicode's EastAsianWidth.txt, W and F), which
// JavaScript's regular expressions have no property for.
const WIDE_RANGES: [number, number][] = [
  [0x1100, 0x115f], // Hangul Jamo initials
  [0x2e80, 0x303e], // CJK radicals, Kangxi, ideographic description, CJK symbols
  [0x3041, 0x33ff], // Hiragana, Katakana, Bopomofo, Hangul compatibility, CJK compatibility
  [0x3400, 0x4dbf], // CJK extension A
  [0x4e00, 0x9fff], // CJK unified ideographs
  [0xa000, 0xa4cf], // Yi
  [0xa960, 0xa97f], // Hangul Jamo extended A
  [0xac00, 0xd7a3], // Hangul syllables
  [0xf900, 0xfaff], // CJK compatibility ideographs
  [0xfe10, 0xfe19], // vertical forms
  [0xfe30, 0xfe6f], // CJK compatibility forms, small form variants
  [0xff00, 0xff60], // fullwidth forms
  [0xffe0, 0xffe6], // fullwidth signs
  [0x16fe0, 0x18cff], // Tangut, Khitan
  [0x1b000, 0x1b2ff], // Kana supplement and extensions, Nushu
  [0x20000, 0x2fffd], // CJK extensions B–F, compatibility supplement
  [0x30000, 0x3fffd], // CJK extensions G, H
];

function wideCodePoint(code: number): boolean {
  for (const [low, high] of WIDE_RANGES) {
    if (code < low) return false;
    if (code <= high) return true;
  }
  return false;
}

/**
 * What measuring non-ASCII text needs, built on its first use: Unicode property classes
 * load ICU's data when the expression is created (~2 ms), which commands that print only
 * ASCII, or JSON, never need.
 */
interface Graphemes {
  segmenter: Intl.Segmenter;
  /** A grapheme that takes no cell: combining marks, format and control characters,
   * default-ignorables (zero-width joiners, variation selectors) on their own. */
  zeroWidth: RegExp;
  /** Emoji drawn as pictures (by default or with U+FE0F): two cells. */
  wideEmoji: RegExp;
}
let graphemes: Graphemes | undefined;

/**
 * Terminal cells `text` takes: 2 for East Asian wide and fullwidth characters and emoji
 * pictures, 0 for combining marks and other zero-width characters, 1 otherwise. Counted per
 * grapheme, so `e` + U+0301 is one cell, not two (`.length` counts UTF-16 units).
 */
export function displayWidth(text: string): number {
  // ASCII without control characters, the common case, is one cell per unit.
  if (/^[\x20-\x7e]*$/.test(text)) return text.length;
  graphemes ??= {
    segmenter: new Intl.Segmenter(),
    zeroWidth: /^[\p{Mark}\p{Control}\p{Format}\p{Default_Ignorable_Code_Point}]+$/u,
    wideEmoji:
      /^\p{Emoji_Presentation}|^\p{Extended_Pictographic}\uFE0F|^\p{Regional_Indicator}{2}/u,
  };
  const { segmenter, zeroWidth, wideEmoji } = graphemes;
  let width = 0;
  for (const { segment } of segmenter.segment(text)) {
    if (zeroWidth.test(segment)) continue;
    if (wideEmoji.test(segment) || wideCodePoint(segment.codePointAt(0) ?? 0)) width += 2;
    else width += 1;
  }
  return width;
}

/** `text` padded with spaces to `width` terminal cells. */
export function padCells(text: string, width: number): string {
  return text + " ".repeat(Math.max(0, width - displayWidth(text)));
}

/**
 * Rows as left-aligned columns two spaces apart, trailing blanks trimmed; widths in
 * terminal cells, at least `minWidths[column]`.
 */
export function table(rows: string[][], minWidths: number[] = []): string[] {
  const columns = Math.max(0, ...rows.map((row) => row.length));
  const widths = Array.from({ length: columns }, (_, column) =>
    Math.max(minWidths[column] ?? 0, ...rows.map((row) => displayWidth(row[column] ?? ""))),
  );
  return rows.map((row) =>
    row
      .map((cell, column) => padCells(cell, widths[column] ?? 0))
      .join("  ")
      .trimEnd(),
  );
}

/** The widest of `texts` in terminal cells, at least `min`. */
export function columnWidth(texts: string[], min = 0): number {
  return Math.max(min, ...texts.map(displayWidth));
}

/**
 * A progress line drawn from each update through `render`; updates closer than
 * `intervalMs` apart are dropped unless `final` says the run is complete.
 */
export function progressLine<T>(
  line: Progress,
  render: (update: T) => string,
  options: { intervalMs?: number; final?: (update: T) => boolean } = {},
): { update: (update: T) => void; done: () => void } {
  const interval = options.intervalMs ?? 0;
  let last = 0;
  return {
    update(update) {
      const now = Date.now();
      if (interval > 0 && options.final?.(update) !== true && now - last < interval) return;
      last = now;
      line.update(render(update));
    },
    done: () => line.done(),
  };
}

/**
 * Label/value lines (`psi status`, `psi cache status`, `psi nitrokeyhsm status`): labels
 * padded to the widest in terminal cells (at least `minWidth`), two spaces, the value as
 * it is (nothing trimmed).
 */
export function labelled(rows: readonly (readonly [string, string])[], minWidth = 0): string[] {
  const width = columnWidth(
    rows.map(([label]) => label),
    minWidth,
  );
  return rows.map(([label, value]) => `${padCells(label, width)}  ${value}`);
}

/**
 * `text`, and when there is a hint, `hint: …` (or `label: …`) on the next line indented by
 * `indent` spaces.
 */
export function withHint(
  text: string,
  hint: string | undefined,
  indent: number,
  label = "hint",
): string {
  return hint ? `${text}\n${" ".repeat(indent)}${label}: ${hint}` : text;
}

/**
 * One row of a per-item report (setup's workloads, TLS certificates, preflight steps):
 * `name  status  detail`, the name padded to `widths[0]` cells and the status to
 * `widths[1]`; without a detail, nothing after the status.
 */
export function statusLine(
  name: string,
  status: string,
  detail: string | undefined,
  widths: readonly [number, number],
): string {
  const padded = padCells(name, widths[0]);
  return detail === undefined
    ? `${padded}  ${status}`
    : `${padded}  ${padCells(status, widths[1])}  ${detail}`;
}

/** Counts after what they count, in the record's order, comma-separated: `3 created, 1 skipped`. */
export function countList(counts: Readonly<Record<string, number>>): string {
  return Object.entries(counts)
    .map(([what, count]) => `${count} ${what}`)
    .join(", ");
}

/** `failed` of `total` (`2 of 5 failed`; with a noun, `2 of 5 certificates failed`). */
export function failedOf(failed: number, total: number, noun?: string): string {
  return `${failed} of ${noun === undefined ? total : plural(total, noun)} failed`;
}

/**
 * A file's write time and age (`psi status`, `psi cache status`): `2026-…Z (3m ago)`, with
 * `more` inside the parentheses after the age.
 */
export function writtenAgo(mtimeMs: number, ageSeconds: number, more = ""): string {
  return `${new Date(mtimeMs).toISOString()} (${formatAge(ageSeconds)} ago${more})`;
}

/** A cache header tag as `0x0a`. */
export function hexByte(value: number): string {
  return `0x${value.toString(16).padStart(2, "0")}`;
}

/** File permission bits as `chmod` takes them: `0600`, `0640`, `04755`. */
export function octalMode(mode: number): string {
  return `0${mode.toString(8).padStart(3, "0")}`;
}

/** The `systemd: ...` line of a daemon-reload (setup, setup-pcscd); none when it was skipped. */
export function reloadLines(reload: DaemonReloadOutcome | undefined): string[] {
  if (reload?.status === "reloaded") return [`systemd: reloaded (${reload.via})`];
  if (reload?.status === "unavailable") return [`systemd: not reloaded: ${reload.detail}`];
  return [];
}
