/** One `KEY=value` assignment of an env file. */
export interface EnvFileEntry {
  key: string;
  value: string;
  /** 1-based line where the assignment starts. */
  line: number;
}

/** What {@link parseEnvFile} read, plus warnings (line and reason, never a value). */
export interface ParsedEnvFile {
  entries: EnvFileEntry[];
  warnings: Array<{ line: number; message: string }>;
}

const KEY = /^[A-Za-z_][A-Za-z0-9_.-]*$/;
const DOUBLE_QUOTE_ESCAPES: Record<string, string> = {
  "\\": "\\",
  '"': '"',
  "'": "'",
  $: "$",
  "`": "`",
  n: "\n",
  r: "\r",
  t: "\t",
};

/**
 * Parses a dotenv file: `KEY=value` lines, optional `export `, `#` comment lines, blank
 * lines. Values: bare (trimmed; ` #` starts a comment), `'single'` (literal, may span
 * lines) or `"double"` (may span lines; `\\ \" \' \$ \` \n \r \t` escapes, any other
 * backslash kept). No `${VAR}` interpolation. A key given twice keeps the later value
 * (warned). Malformed lines are skipped with a warning naming the line.
 */
export function parseEnvFile(text: string): ParsedEnvFile {
  const entries = new Map<string, EnvFileEntry>();
  const warnings: ParsedEnvFile["warnings"] = [];
  // CRLF ends a line like LF, but a CR inside quotes is part of the value (bash and
  // systemd keep it there too), so the text is not normalized up front.
  const source = text;
  let index = 0;
  let line = 1;

  const restOfLine = (): string => {
    const end = source.indexOf("\n", index);
    const rest = end < 0 ? source.slice(index) : source.slice(index, end);
    index = end < 0 ? source.length : end + 1;
    line++;
    return rest;
  };

  while (index < source.length) {
    const startLine = line;
    const head = /^[ \t]*/.exec(source.slice(index))![0];
    index += head.length;
    if (source[index] === "\n" || (source[index] === "\r" && source[index + 1] === "\n")) {
      index += source[index] === "\r" ? 2 : 1;
      line++;
      continue;
    }
    if (source[index] === "#" || index >= source.length) {
      restOfLine();
      continue;
    }
    const equals = source.indexOf("=", index);
    const newline = source.indexOf("\n", index);
    if (equals < 0 || (newline >= 0 && newline < equals)) {
      restOfLine();
      warnings.push({ line: startLine, message: "not a KEY=value line; skipped" });
      continue;
    }
    let key = source.slice(index, equals).trim();
    if (key.startsWith("export ") || key.startsWith("export\t")) key = key.slice(7).trim();
    // Only a well-formed key is ever echoed in a warning (a malformed one could be a value).
    const label = KEY.test(key) ? key : "an entry";
    index = equals + 1;
    while (source[index] === " " || source[index] === "\t") index++;
    const quote = source[index];
    let value: string;
    if (quote === "'" || quote === '"') {
      let collected = "";
      let closed = false;
      index++;
      while (index < source.length) {
        const char = source[index]!;
        if (char === quote) {
          closed = true;
          index++;
          break;
        }
        if (quote === '"' && char === "\\" && index + 1 < source.length) {
          const next = source[index + 1]!;
          const mapped = DOUBLE_QUOTE_ESCAPES[next];
          collected += mapped ?? `\\${next}`;
          if (next === "\n") line++;
          index += 2;
          continue;
        }
        if (char === "\n") line++;
        collected += char;
        index++;
      }
      if (!closed) {
        warnings.push({
          line: startLine,
          message: `${label}: the ${quote} quote is not closed; skipped`,
        });
        continue;
      }
      const trailing = restOfLine().trim();
      if (trailing !== "" && !trailing.startsWith("#")) {
        warnings.push({
          line: startLine,
          message: `${label}: text after the closing quote; skipped`,
        });
        continue;
      }
      value = collected;
    } else {
      const rest = restOfLine();
      const comment = /[ \t]#/.exec(rest);
      value = (comment ? rest.slice(0, comment.index) : rest).trim();
    }
    if (!KEY.test(key)) {
      warnings.push({ line: startLine, message: "the key is not a valid variable name; skipped" });
      continue;
    }
    if (entries.has(key)) {
      warnings.push({ line: startLine, message: `${key} is set again; the later value wins` });
      entries.delete(key);
    }
    entries.set(key, { key, value, line: startLine });
  }
  return { entries: [...entries.values()], warnings };
}
