/** One `[Section]` of a unit file and its `Key=value` lines, in order. */
export type Section = readonly [name: string, lines: readonly string[]];

/**
 * Joins sections the way the reference does: a header, its lines, one blank line between
 * sections, a trailing newline. Sections with no lines are left out.
 */
export function unitText(sections: readonly Section[]): string {
  return `${sections
    .filter(([, lines]) => lines.length > 0)
    .map(([name, lines]) => [`[${name}]`, ...lines].join("\n"))
    .join("\n\n")}\n`;
}
