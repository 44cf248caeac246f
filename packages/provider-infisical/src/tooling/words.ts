// Two word splitters: systemd's (unit-file values such as `Environment=`, as quadlet reads
// them) and a small POSIX-shell-like one for TLS hooks, which run without a shell.

const UNIT_SEPARATORS = " \t\n\r";

/**
 * One C escape after a backslash, as systemd's `cunescape_one` reads it (systemd.syntax(7)):
 * `\a \b \f \n \r \t \v \\ \" \' \s \xHH \uHHHH \UHHHHHHHH \OOO`; NUL is refused.
 * Returns the character and how many characters of `text` (after the backslash) it used.
 */
function unescapeOne(text: string): { char: string; used: number } | undefined {
  const simple: Record<string, string> = {
    a: "\x07",
    b: "\b",
    f: "\f",
    n: "\n",
    r: "\r",
    t: "\t",
    v: "\v",
    "\\": "\\",
    '"': '"',
    "'": "'",
    s: " ",
  };
  const first = text[0];
  if (first === undefined) return undefined;
  if (Object.hasOwn(simple, first)) return { char: simple[first]!, used: 1 };
  const digits = (length: number, radix: 8 | 16) => {
    const part = text.slice(1, 1 + length);
    const pattern = radix === 16 ? /^[0-9a-fA-F]+$/ : /^[0-7]+$/;
    return part.length === length && pattern.test(part) ? Number.parseInt(part, radix) : undefined;
  };
  let code: number | undefined;
  let used = 0;
  if (first === "x") {
    code = digits(2, 16);
    used = 3;
  } else if (first === "u") {
    code = digits(4, 16);
    used = 5;
  } else if (first === "U") {
    code = digits(8, 16);
    used = 9;
  } else if (/[0-7]/.test(first)) {
    const part = text.slice(0, 3);
    code = /^[0-7]{3}$/.test(part) ? Number.parseInt(part, 8) : undefined;
    if (code !== undefined && code > 255) code = undefined;
    used = 3;
  }
  if (code === undefined || code === 0 || code > 0x10ffff) return undefined;
  if (code >= 0xd800 && code <= 0xdfff) return undefined;
  return { char: String.fromCodePoint(code), used };
}

/**
 * Splits a unit-file value into words the way quadlet reads `Environment=` and `Exec=`
 * (systemd's extract_first_word with RELAX, UNQUOTE and CUNESCAPE): whitespace separates,
 * single or double quotes group (and are removed) anywhere in a word, C escapes are
 * decoded inside and outside quotes, an unbalanced quote runs to the end and a trailing
 * backslash is dropped. An unknown escape makes the whole value invalid (undefined),
 * as quadlet then ignores the line.
 */
export function splitUnitWords(value: string): string[] | undefined {
  const words: string[] = [];
  let index = 0;
  const length = value.length;
  while (index < length) {
    while (index < length && UNIT_SEPARATORS.includes(value[index]!)) index++;
    if (index >= length) break;
    let word = "";
    let quote: string | undefined;
    for (; index < length; index++) {
      const char = value[index]!;
      if (char === "\\") {
        if (index + 1 >= length) {
          index = length;
          break;
        }
        const escaped = unescapeOne(value.slice(index + 1));
        if (!escaped) return undefined;
        word += escaped.char;
        index += escaped.used;
        continue;
      }
      if (quote !== undefined) {
        if (char === quote) quote = undefined;
        else word += char;
        continue;
      }
      if (char === "'" || char === '"') {
        quote = char;
        continue;
      }
      if (UNIT_SEPARATORS.includes(char)) break;
      word += char;
    }
    words.push(word);
  }
  return words;
}

/** Why {@link splitCommandLine} refused a command line. */
export interface CommandLineProblem {
  problem: string;
}

const SHELL_OPERATORS = new Set(["|", "&", ";", "<", ">", "(", ")", "$", "`"]);

/**
 * Splits a hook command into argv with POSIX shell quoting and nothing else: whitespace
 * separates words; `'...'` is literal; `"..."` keeps everything but `\"`, `\\`, `\$` and
 * `` \` `` escapes; a backslash outside quotes takes the next character literally. There is
 * no shell, so unquoted shell syntax (`| & ; < > ( ) $` and backticks) is refused rather
 * than passed on as a surprising argument.
 */
export function splitCommandLine(command: string): string[] | CommandLineProblem {
  const argv: string[] = [];
  let word: string | undefined;
  let index = 0;
  const push = () => {
    if (word !== undefined) argv.push(word);
    word = undefined;
  };
  while (index < command.length) {
    const char = command[index]!;
    if (char === " " || char === "\t" || char === "\n") {
      push();
      index++;
      continue;
    }
    if (char === "'") {
      const end = command.indexOf("'", index + 1);
      if (end < 0) return { problem: "a single quote is not closed" };
      word = (word ?? "") + command.slice(index + 1, end);
      index = end + 1;
      continue;
    }
    if (char === '"') {
      let text = "";
      let closed = false;
      index++;
      while (index < command.length) {
        const inner = command[index]!;
        if (inner === '"') {
          closed = true;
          index++;
          break;
        }
        if (inner === "\\" && index + 1 < command.length && '"\\$`'.includes(command[index + 1]!)) {
          text += command[index + 1];
          index += 2;
          continue;
        }
        text += inner;
        index++;
      }
      if (!closed) return { problem: "a double quote is not closed" };
      word = (word ?? "") + text;
      continue;
    }
    if (char === "\\") {
      if (index + 1 >= command.length) return { problem: "the command ends with a backslash" };
      word = (word ?? "") + command[index + 1];
      index += 2;
      continue;
    }
    if (SHELL_OPERATORS.has(char)) {
      return {
        problem: `"${char}" is shell syntax, and hooks run without a shell (quote it, or use sh -c '...')`,
      };
    }
    word = (word ?? "") + char;
    index++;
  }
  push();
  if (argv.length === 0) return { problem: "the command is empty" };
  return argv;
}
