import { execFileSync } from "node:child_process";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  dotenvQuote,
  formatSecrets,
  parseEnvFile,
  parseQuadlet,
  shellQuote,
  splitCommandLine,
  splitUnitWords,
} from "../src/index.js";

const NASTY = [
  "it's",
  'say "hi"',
  "line1\nline2\n",
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a literal ${VAR} is the point
  "$HOME and ${PATH} and $(id)",
  "`uname`",
  "back\\slash\\",
  "tab\there",
  "  padded  ",
  "#not a comment",
  "",
  "é 😀 ünïcödé",
  "'\"'\"\\'",
  "ends with backslash\\",
  "=equals=",
  "cr\r\nlf",
];

describe("splitUnitWords (quadlet's Environment= splitting)", () => {
  it("splits on whitespace and groups quoted words", () => {
    expect(splitUnitWords('A=1 "B=two words"   C=3')).toEqual(["A=1", "B=two words", "C=3"]);
    expect(splitUnitWords("A='single quoted' B=\"x\"y")).toEqual(["A=single quoted", "B=xy"]);
    expect(splitUnitWords('D="x y"z')).toEqual(["D=x yz"]);
  });

  it("decodes C escapes inside and outside quotes", () => {
    expect(splitUnitWords('A=a\\nb "B=\\t\\"q\\""')).toEqual(["A=a\nb", 'B=\t"q"']);
    expect(splitUnitWords("A=\\x41\\101\\u00e9\\s")).toEqual(["A=AAé "]);
  });

  it("refuses unknown escapes and NUL; relaxes unbalanced quotes and a trailing backslash", () => {
    expect(splitUnitWords("A=\\q")).toBeUndefined();
    expect(splitUnitWords("A=\\x00")).toBeUndefined();
    expect(splitUnitWords('A="open ended')).toEqual(["A=open ended"]);
    expect(splitUnitWords("A=b\\")).toEqual(["A=b"]);
  });
});

describe("parseQuadlet", () => {
  it("reads Environment= and Secret= of [Container] with systemd syntax", () => {
    const parsed = parseQuadlet(
      [
        "# comment",
        "[Unit]",
        "Description=x",
        "Environment=NOT=this",
        "[Container]",
        "Image=quay.io/x",
        'Environment=A=1 "B=two words"',
        "; another comment",
        "Environment=C=first \\",
        "  D=continued",
        "Environment=A=later",
        "Environment=PCT=100%%",
        "Secret=db-password,type=env,target=DB_PASSWORD",
        "Secret=tls-key",
        "Secret=api,type=env",
        "Secret=bad,type=socket",
        "[Service]",
        "Environment=PODMAN_SYSTEMD_UNIT=%n",
        "",
      ].join("\n"),
    );
    expect(parsed.environment.map(({ key, value }) => [key, value])).toEqual([
      ["B", "two words"],
      ["C", "first"],
      ["D", "continued"],
      ["A", "later"],
      ["PCT", "100%"],
    ]);
    expect(parsed.environment.find((entry) => entry.key === "D")?.line).toBe(9);
    expect(parsed.secrets).toEqual([
      { name: "db-password", type: "env", target: "DB_PASSWORD", key: "DB_PASSWORD", line: 13 },
      { name: "tls-key", type: "mount", target: undefined, key: "tls-key", line: 14 },
      { name: "api", type: "env", target: undefined, key: "api", line: 15 },
    ]);
    expect(parsed.warnings).toEqual([
      { line: 16, message: "Secret=bad has type=socket; expected mount or env" },
    ]);
  });

  it("warns about lines quadlet ignores, never echoing values", () => {
    const parsed = parseQuadlet(
      "[Container]\nEnvironment=NOVALUE\nEnvironment=X=\\qsecret\nEnvironment=H=%h/x\n",
    );
    expect(parsed.environment.map((entry) => entry.key)).toEqual(["H"]);
    expect(parsed.warnings.map((warning) => warning.line)).toEqual([2, 3, 4]);
    expect(JSON.stringify(parsed.warnings)).not.toContain("secret");
  });
});

describe("parseEnvFile", () => {
  it("reads bare, quoted, multi-line and exported assignments", () => {
    const parsed = parseEnvFile(
      [
        "# header",
        "",
        "A=plain value  # comment",
        "export B='single $NOT expanded'",
        'C="double\\nescape \\"q\\" \\$x"',
        "D='multi",
        "line'",
        "E=",
        "  F = spaced ",
        'G="a#b" # trailing comment',
        "H=url#fragment",
        "A=again",
      ].join("\n"),
    );
    expect(Object.fromEntries(parsed.entries.map(({ key, value }) => [key, value]))).toEqual({
      B: "single $NOT expanded",
      C: 'double\nescape "q" $x',
      D: "multi\nline",
      E: "",
      F: "spaced",
      G: "a#b",
      H: "url#fragment",
      A: "again",
    });
    expect(parsed.entries.find((entry) => entry.key === "E")?.line).toBe(8);
    expect(parsed.warnings).toEqual([
      { line: 12, message: "A is set again; the later value wins" },
    ]);
  });

  it("skips malformed lines with a warning that never holds a value", () => {
    const parsed = parseEnvFile("just-text-secret\n9KEY=v\nOK=1\nQ='unclosed secret\n");
    expect(parsed.entries.map((entry) => entry.key)).toEqual(["OK"]);
    expect(parsed.warnings.map((warning) => warning.line)).toEqual([1, 2, 4]);
    expect(JSON.stringify(parsed.warnings)).not.toContain("secret");
  });

  it("reads a CRLF file: CRLF ends lines, a CR inside quotes stays in the value", () => {
    const parsed = parseEnvFile("# c\r\nA=plain\r\n\r\nB='quoted'  # x\r\nC=\"two\r\nlines\"\r\n");
    expect(parsed.warnings).toEqual([]);
    expect(Object.fromEntries(parsed.entries.map(({ key, value }) => [key, value]))).toEqual({
      A: "plain",
      B: "quoted",
      C: "two\r\nlines",
    });
  });

  it("reads back every value formatSecrets writes (env format)", () => {
    const secrets = NASTY.map((value, index) => ({ key: `K${index}`, value }));
    const { text, skipped } = formatSecrets(secrets, "env");
    expect(skipped).toEqual([]);
    const parsed = parseEnvFile(text);
    expect(parsed.warnings).toEqual([]);
    expect(Object.fromEntries(parsed.entries.map(({ key, value }) => [key, value]))).toEqual(
      Object.fromEntries(secrets.map(({ key, value }) => [key, value])),
    );
  });

  it("round-trips arbitrary values (property)", () => {
    fc.assert(
      fc.property(fc.string({ unit: "grapheme-composite" }), fc.string(), (a, b) => {
        const text = `X=${dotenvQuote(a)}\nY=${dotenvQuote(b)}\n`;
        const values = Object.fromEntries(parseEnvFile(text).entries.map((e) => [e.key, e.value]));
        expect(values).toEqual({ X: a, Y: b });
      }),
      { numRuns: 300 },
    );
  });
});

describe("formatSecrets", () => {
  it("shell: export lines, keys sorted, unusable keys skipped by name", () => {
    const { text, skipped } = formatSecrets(
      [
        { key: "B", value: "it's" },
        { key: "A", value: "x" },
        { key: "bad-key", value: "v" },
        { key: "NUL", value: "a\0b" },
      ],
      "shell",
    );
    expect(text).toBe("export A='x'\nexport B='it'\\''s'\n");
    expect(skipped.map((entry) => entry.key)).toEqual(["NUL", "bad-key"]);
  });

  it("shell: eval in bash gives back every value byte for byte", () => {
    for (const value of NASTY) {
      const { text } = formatSecrets([{ key: "KEY", value }], "shell");
      const out = execFileSync("bash", ["-c", 'eval "$(cat)"; printf %s "$KEY"'], {
        input: text,
        encoding: "utf8",
      });
      expect(out).toBe(value);
    }
  });

  it("json: one object", () => {
    expect(JSON.parse(formatSecrets([{ key: "a b", value: "\n" }], "json").text)).toEqual({
      "a b": "\n",
    });
  });

  it("shellQuote and dotenvQuote pick the simplest safe form", () => {
    expect(shellQuote("")).toBe("''");
    expect(dotenvQuote("plain/value:1")).toBe("plain/value:1");
    expect(dotenvQuote("two words")).toBe("'two words'");
    expect(dotenvQuote("it's")).toBe(`"it's"`);
    expect(dotenvQuote('a\\"b')).toBe('"a\\\\\\"b"');
  });
});

describe("splitCommandLine (hooks)", () => {
  it("splits with shell quoting and no expansion", () => {
    expect(splitCommandLine("systemctl reload nginx.service")).toEqual([
      "systemctl",
      "reload",
      "nginx.service",
    ]);
    expect(splitCommandLine(`cp '/a b' "c \\"d\\" \\$e" f\\ g ''`)).toEqual([
      "cp",
      "/a b",
      'c "d" $e',
      "f g",
      "",
    ]);
    expect(splitCommandLine("sh -c 'kill -HUP $(cat /run/x.pid)'")).toEqual([
      "sh",
      "-c",
      "kill -HUP $(cat /run/x.pid)",
    ]);
  });

  it("refuses shell syntax and broken quoting instead of guessing", () => {
    expect(splitCommandLine("systemctl reload x && echo ok")).toHaveProperty("problem");
    expect(splitCommandLine("echo $HOME")).toHaveProperty("problem");
    expect(splitCommandLine("echo 'open")).toHaveProperty("problem");
    expect(splitCommandLine('echo "open')).toHaveProperty("problem");
    expect(splitCommandLine("   ")).toHaveProperty("problem");
  });
});
