// Output formats of `psi infisical env`. Values are the caller's to print; these functions
// only quote. Keys that a format cannot carry are skipped and reported (by key, never value).

/** Output formats of {@link formatSecrets}; `export` is the reference's name for `shell`. */
export type EnvFormat = "shell" | "export" | "env" | "json";

/** A key left out of the output, and why. */
export interface SkippedKey {
  key: string;
  reason: string;
}

/** Formatted text and the keys that could not be expressed in the format. */
export interface FormattedSecrets {
  text: string;
  skipped: SkippedKey[];
  /** Keys written, but that some reader of the format takes differently (`env`: Compose). */
  caveats: SkippedKey[];
}

const SHELL_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const DOTENV_NAME = /^[A-Za-z_][A-Za-z0-9_.-]*$/;
const DOTENV_BARE = /^[A-Za-z0-9_./:@%+,=^-]+$/;

/** True when `key` can be a shell variable name (what `eval` and `export` accept). */
export function isShellName(key: string): boolean {
  return SHELL_NAME.test(key);
}

/** POSIX single quoting: the value verbatim between `'`, each `'` written as `'\''`. */
export function shellQuote(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

/**
 * A value for an env file that bash's `source`, systemd's `EnvironmentFile=` and Compose all
 * read back unchanged: bare when plain; `'...'` (literal for all three) when it has no `'`
 * and no `\`; otherwise `"..."` with `\`, `"`, `$` and `` ` `` escaped by a backslash (the
 * escapes bash and systemd share, so nothing is expanded or run). Newlines stay literal
 * inside the quotes. {@link composeCaveat} names the values Compose reads differently.
 */
export function dotenvQuote(value: string): string {
  if (value === "") return "";
  if (DOTENV_BARE.test(value)) return value;
  if (!/['\\]/.test(value)) return `'${value}'`;
  return `"${value.replace(/[\\"$`]/g, (char) => `\\${char}`)}"`;
}

/**
 * Why Compose (python-dotenv, which podman-compose and docker-compose 1.x read `.env` with)
 * would read a {@link dotenvQuote}d value differently, or undefined when it reads it back
 * exactly: it expands `${NAME}` inside any quotes, keeps `\$` and `` \` `` as two
 * characters, and reads a carriage return as a newline.
 */
export function composeCaveat(value: string): string | undefined {
  // biome-ignore lint/suspicious/noTemplateCurlyInString: Compose's ${...}, not a template
  if (value.includes("${")) return "Compose expands ${...} in it";
  if (/['\\]/.test(value) && /[$`]/.test(value))
    return "it holds ' or \\ together with $ or `, which no quoting makes bash and Compose read alike";
  if (value.includes("\r")) return "Compose reads its carriage return as a newline";
  return undefined;
}

/**
 * Formats secrets for `psi infisical env`, keys sorted:
 * - `shell`: `export KEY='value'` lines, safe for `eval "$(psi infisical env ...)"`; keys that
 *   are not shell names and values holding NUL (no shell variable can) are skipped;
 * - `env`: `KEY=value` lines ({@link dotenvQuote}); keys that are not dotenv names and values
 *   holding NUL are skipped; values Compose reads differently are written and listed in `caveats`;
 * - `json`: one JSON object.
 */
export function formatSecrets(
  secrets: ReadonlyArray<{ key: string; value: string }>,
  format: EnvFormat,
): FormattedSecrets {
  const sorted = [...secrets].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const skipped: SkippedKey[] = [];
  const caveats: SkippedKey[] = [];
  if (format === "json") {
    const object: Record<string, string> = {};
    for (const secret of sorted) object[secret.key] = secret.value;
    return { text: `${JSON.stringify(object, null, 2)}\n`, skipped, caveats };
  }
  const lines: string[] = [];
  for (const { key, value } of sorted) {
    if (format === "shell" || format === "export") {
      if (!isShellName(key)) {
        skipped.push({ key, reason: "not a valid shell variable name" });
        continue;
      }
      if (value.includes("\0")) {
        skipped.push({
          key,
          reason: "the value contains a NUL byte, which no shell variable can hold",
        });
        continue;
      }
      lines.push(`export ${key}=${shellQuote(value)}`);
    } else {
      if (!DOTENV_NAME.test(key)) {
        skipped.push({ key, reason: "not a valid dotenv variable name" });
        continue;
      }
      if (value.includes("\0")) {
        skipped.push({ key, reason: "the value contains a NUL byte, which no env file can hold" });
        continue;
      }
      const caveat = composeCaveat(value);
      if (caveat) caveats.push({ key, reason: caveat });
      lines.push(`${key}=${dotenvQuote(value)}`);
    }
  }
  return { text: lines.map((line) => `${line}\n`).join(""), skipped, caveats };
}
