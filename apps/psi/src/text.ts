// Small text helpers every command's human output shares.

const IRREGULAR: Record<string, string> = { entry: "entries", directory: "directories" };

/** `1 secret`, `2 secrets`, `8 entries`: a count with its noun in the right number. */
export function plural(count: number, word: string): string {
  return `${count} ${count === 1 ? word : (IRREGULAR[word] ?? `${word}s`)}`;
}

/** Rows as left-aligned columns two spaces apart, trailing blanks trimmed. */
export function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, column) =>
    Math.max(...rows.map((row) => (row[column] ?? "").length)),
  );
  return rows.map((row) =>
    row
      .map((cell, column) => cell.padEnd(widths[column]!))
      .join("  ")
      .trimEnd(),
  );
}
