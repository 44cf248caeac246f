import { splitUnitWords } from "./words.js";

/** An `Environment=` assignment of a quadlet's `[Container]` section. */
export interface QuadletEnvironment {
  key: string;
  value: string;
  /** 1-based line of the `Environment=` line (the first line of a continued one). */
  line: number;
}

/** A `Secret=` reference of a quadlet's `[Container]` section (podman run --secret syntax). */
export interface QuadletSecret {
  /** The Podman secret name. */
  name: string;
  type: "mount" | "env";
  /** `target=`: the variable name (env) or the file name/path (mount); undefined when unset. */
  target: string | undefined;
  /** The key an import gives it: the variable name for env, the secret name for mount. */
  key: string;
  line: number;
}

/** What {@link parseQuadlet} found, plus warnings (line and reason, never a value). */
export interface ParsedQuadlet {
  environment: QuadletEnvironment[];
  secrets: QuadletSecret[];
  warnings: Array<{ line: number; message: string }>;
}

/** Logical lines of a unit file: comments dropped, backslash continuations joined with a space. */
function unitLines(text: string): Array<{ line: number; text: string }> {
  const out: Array<{ line: number; text: string }> = [];
  const raw = text.split(/\r?\n/);
  let pending: { line: number; text: string } | undefined;
  for (let index = 0; index < raw.length; index++) {
    const line = raw[index]!;
    const trimmed = line.trim();
    // systemd skips comment lines, also inside a continuation.
    if (trimmed.startsWith("#") || trimmed.startsWith(";")) continue;
    if (pending === undefined && trimmed === "") continue;
    const continued = line.endsWith("\\");
    const part = continued ? `${line.slice(0, -1)} ` : line;
    if (pending) pending.text += part;
    else pending = { line: index + 1, text: part };
    if (!continued) {
      out.push(pending);
      pending = undefined;
    }
  }
  if (pending) out.push(pending);
  return out;
}

/**
 * Reads the `Environment=` assignments and `Secret=` references of a quadlet `.container`
 * file's `[Container]` section, with systemd's syntax: comments, line continuations,
 * quoting and C escapes (`Environment=A=1 "B=two words"`). Later assignments of a key win,
 * as in quadlet. `[Service]` lines are the podman process's, not the container's, and are
 * not read. Specifiers such as `%h` are not expanded (warned about).
 */
export function parseQuadlet(text: string): ParsedQuadlet {
  const environment = new Map<string, QuadletEnvironment>();
  const secrets: QuadletSecret[] = [];
  const warnings: ParsedQuadlet["warnings"] = [];
  let section: string | undefined;
  for (const { line, text: entry } of unitLines(text)) {
    const trimmed = entry.trim();
    if (trimmed.startsWith("[")) {
      section = trimmed.endsWith("]") ? trimmed.slice(1, -1) : undefined;
      continue;
    }
    const equals = trimmed.indexOf("=");
    if (equals < 0) continue;
    if (section !== "Container") continue;
    const name = trimmed.slice(0, equals).trim();
    const value = trimmed.slice(equals + 1).trim();
    if (name === "Environment") {
      const words = splitUnitWords(value);
      if (words === undefined) {
        warnings.push({ line, message: "Environment= has an invalid escape; quadlet ignores it" });
        continue;
      }
      for (const word of words) {
        const cut = word.indexOf("=");
        if (cut <= 0) {
          warnings.push({ line, message: "an Environment= word is not KEY=VALUE; ignored" });
          continue;
        }
        const key = word.slice(0, cut);
        const assigned = word.slice(cut + 1);
        if (/%[a-zA-Z]/.test(assigned.replaceAll("%%", ""))) {
          warnings.push({
            line,
            message: `${key} contains a systemd specifier (%x), imported without expansion`,
          });
        }
        environment.delete(key);
        environment.set(key, { key, value: assigned.replaceAll("%%", "%"), line });
      }
    } else if (name === "Secret") {
      const parsed = parseSecretReference(value);
      if (typeof parsed === "string") warnings.push({ line, message: parsed });
      else secrets.push({ ...parsed, line });
    }
  }
  return { environment: [...environment.values()], secrets, warnings };
}

/** `NAME[,type=mount|env][,target=T][,uid=..,gid=..,mode=..]`; a string is the problem. */
function parseSecretReference(value: string): Omit<QuadletSecret, "line"> | string {
  const words = splitUnitWords(value);
  if (words === undefined || words.length !== 1) return "Secret= is not one NAME[,option=...] word";
  const [name, ...options] = words[0]!.split(",");
  if (!name) return "Secret= has no secret name";
  let type: "mount" | "env" = "mount";
  let target: string | undefined;
  for (const option of options) {
    const cut = option.indexOf("=");
    const optionName = cut < 0 ? option : option.slice(0, cut);
    const optionValue = cut < 0 ? "" : option.slice(cut + 1);
    if (optionName === "type") {
      if (optionValue !== "mount" && optionValue !== "env")
        return `Secret=${name} has type=${optionValue}; expected mount or env`;
      type = optionValue;
    } else if (optionName === "target") {
      target = optionValue || undefined;
    }
  }
  return { name, type, target, key: type === "env" ? (target ?? name) : name };
}
