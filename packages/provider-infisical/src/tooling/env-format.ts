// Output formats of `psi infisical env`. Values are the caller's to print; these functions
// only quote. Keys that a format cannot carry are skipped and reported (by key, never value).

/** Output formats of {@link formatSecrets}. */
export type EnvFormat = "shell" | "env" | "json";

/** A key left out of the output, and why. */
export interface SkippedKey {
  key: string;
  reason: string;
}

/** Formatted text and the keys that could not be expressed in the format. */
export interface FormattedSecrets {
  text: string;
  skipped: SkippedKey[];
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
 * A dotenv value: bare when it is plain, `'...'` when it has no `'`, `\` or CR, otherwise
 * `"..."` with `\`, `"` and CR escaped. Newlines stay literal inside the quotes. This reads back
 * the same in psi's own reader, systemd's EnvironmentFile= and python-dotenv.
 */
export function dotenvQuote(value: string): string {
  if (value === "") return "";
  if (DOTENV_BARE.test(value)) return value;
  if (!/['\\\r]/.test(value)) return `'${value}'`;
  return `"${value.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\r", "\\r")}"`;
}

/**
 * Formats secrets for `psi infisical env`, keys sorted:
 * - `shell`: `export KEY='value'` lines, safe for `eval "$(psi infisical env ...)"`; keys that
 *   are not shell names and values holding NUL (no shell variable can) are skipped;
 * - `env`: dotenv `KEY=value` lines ({@link dotenvQuote}); keys that are not dotenv names skipped;
 * - `json`: one JSON object.
 */
export function formatSecrets(
  secrets: ReadonlyArray<{ key: string; value: string }>,
  format: EnvFormat,
): FormattedSecrets {
  const sorted = [...secrets].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const skipped: SkippedKey[] = [];
  if (format === "json") {
    const object: Record<string, string> = {};
    for (const secret of sorted) object[secret.key] = secret.value;
    return { text: `${JSON.stringify(object, null, 2)}\n`, skipped };
  }
  const lines: string[] = [];
  for (const { key, value } of sorted) {
    if (format === "shell") {
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
      lines.push(`${key}=${dotenvQuote(value)}`);
    }
  }
  return { text: lines.map((line) => `${line}\n`).join(""), skipped };
}
