/**
 * The `[secrets.opts]` of a containers.conf text such as `psi install` writes (SPEC §5):
 * what Podman records as a shell secret's driver options when it is created. Only the
 * TOML used there is read: `key = "basic string"` lines.
 */
export function parseDriverOptions(conf: string): Record<string, string> {
  const options: Record<string, string> = {};
  let inOpts = false;
  for (const raw of conf.split("\n")) {
    const line = raw.trim();
    if (line.startsWith("[")) {
      inOpts = line === "[secrets.opts]";
      continue;
    }
    if (!inOpts || line === "" || line.startsWith("#")) continue;
    const match = /^([A-Za-z0-9_-]+)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(?:#.*)?$/.exec(line);
    if (match) options[match[1]!] = unescapeBasic(match[2]!);
  }
  return options;
}

function unescapeBasic(text: string): string {
  return text.replace(/\\(u[0-9A-Fa-f]{4}|U[0-9A-Fa-f]{8}|.)/g, (_, sequence: string) => {
    switch (sequence[0]) {
      case "n":
        return "\n";
      case "t":
        return "\t";
      case "r":
        return "\r";
      case "b":
        return "\b";
      case "f":
        return "\f";
      case "u":
      case "U":
        return String.fromCodePoint(Number.parseInt(sequence.slice(1), 16));
      default:
        return sequence;
    }
  });
}

/** The option names whose values differ between what Podman recorded and what is expected. */
export function differingDriverOptions(
  recorded: Readonly<Record<string, string>>,
  expected: Readonly<Record<string, string>>,
): string[] {
  const names = new Set([...Object.keys(recorded), ...Object.keys(expected)]);
  return [...names].filter((name) => recorded[name] !== expected[name]).sort();
}
