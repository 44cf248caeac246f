import { describe, expect, it } from "vitest";
import type { Progress } from "../src/app.js";
import {
  columnWidth,
  countList,
  displayWidth,
  failedOf,
  hexByte,
  labelled,
  octalMode,
  padCells,
  plural,
  progressLine,
  statusLine,
  table,
  withHint,
  writtenAgo,
} from "../src/text.js";

describe("human text", () => {
  it("counts nouns in the right number (no more '8 entrys')", () => {
    expect(plural(8, "entry")).toBe("8 entries");
    expect(plural(1, "entry")).toBe("1 entry");
    expect(plural(0, "secret")).toBe("0 secrets");
    expect(plural(1, "workload")).toBe("1 workload");
  });

  it("aligns columns and trims trailing blanks", () => {
    expect(
      table([
        ["A", "BB", ""],
        ["CCC", "D", ""],
      ]),
    ).toEqual(["A    BB", "CCC  D"]);
  });

  it("pads labels to the widest in cells and keeps values as they are", () => {
    expect(
      labelled([
        ["path", "/x"],
        ["", "note "],
        ["名前", "v"],
      ]),
    ).toEqual(["path  /x", "      note ", "名前  v"]);
  });

  it("puts a hint on its own indented line, and nothing without one", () => {
    expect(withHint("cache: FAILED", "run psi setup", 6)).toBe(
      "cache: FAILED\n      hint: run psi setup",
    );
    expect(withHint("FAIL  pin", "run init", 6, "fix")).toBe("FAIL  pin\n      fix: run init");
    expect(withHint("ok", undefined, 4)).toBe("ok");
    expect(withHint("ok", "", 4)).toBe("ok");
  });

  it("lines up per-item rows: name, status, detail; no detail leaves no trailing blanks", () => {
    const widths = [5, 10] as const;
    expect(statusLine("app", "ok", "2 secrets", widths)).toBe("app    ok          2 secrets");
    expect(statusLine("界", "store-only", "", widths)).toBe("界     store-only  ");
    expect(statusLine("web", "FAILED", undefined, widths)).toBe("web    FAILED");
  });

  it("lists counts and failures as every summary line says them", () => {
    expect(countList({ created: 3, "pending approval": 1 })).toBe("3 created, 1 pending approval");
    expect(countList({})).toBe("");
    expect(failedOf(1, 3)).toBe("1 of 3 failed");
    expect(failedOf(2, 5, "certificate")).toBe("2 of 5 certificates failed");
    expect(failedOf(1, 1, "certificate")).toBe("1 of 1 certificate failed");
  });

  it("formats tags and modes as the status commands print them", () => {
    expect(hexByte(3)).toBe("0x03");
    expect(hexByte(0xa1)).toBe("0xa1");
    expect(octalMode(0o600)).toBe("0600");
    expect(octalMode(0o640)).toBe("0640");
    expect(octalMode(0o4755)).toBe("04755");
    expect(octalMode(0o7)).toBe("0007");
  });

  it("says when a file was written and how long ago, with more inside the parentheses", () => {
    const ms = Date.UTC(2026, 0, 2, 3, 4, 5);
    expect(writtenAgo(ms, 125)).toBe("2026-01-02T03:04:05.000Z (2min ago)");
    expect(writtenAgo(ms, 0, "; refresh_interval 1h")).toBe(
      "2026-01-02T03:04:05.000Z (0s ago; refresh_interval 1h)",
    );
  });

  it("keeps columns at a minimum width", () => {
    expect(table([["A", "B"]], [4])).toEqual(["A     B"]);
    expect(columnWidth(["ab"], 8)).toBe(8);
  });
});

describe("terminal cells", () => {
  it.each([
    ["plain ASCII", "db-host", 7],
    ["CJK ideographs take two cells", "数据库", 6],
    ["Hangul syllables take two cells", "한국", 4],
    ["fullwidth forms take two cells", "ＡＢ", 4],
    ["a combining accent takes none", "e\u0301te\u0301", 3],
    ["a zero-width joiner takes none", "a\u200bb", 2],
    ["an emoji picture takes two", "ok 🔒", 5],
    ["an emoji ZWJ sequence is one picture", "👩‍💻", 2],
    ["a flag is one picture", "🇩🇪", 2],
    ["a text-style symbol takes one", "✓", 1],
    ["Latin with accents precomposed", "München", 7],
  ])("%s", (_, text, cells) => {
    expect(displayWidth(text)).toBe(cells);
  });

  it("aligns a table of wide and combining text by cells, not UTF-16 units", () => {
    const lines = table([
      ["数据库", "x"],
      ["e\u0301", "y"],
      ["abcdef", "z"],
    ]);
    expect(lines).toEqual(["数据库  x", "e\u0301       y", "abcdef  z"]);
    // Every second column starts at the same terminal column.
    const starts = lines.map((line) => displayWidth(line.slice(0, -1)));
    expect(new Set(starts).size).toBe(1);
    expect(padCells("数", 4)).toBe("数  ");
  });
});

describe("progressLine", () => {
  function recorder(): Progress & { shown: string[]; cleared: number } {
    const shown: string[] = [];
    return {
      shown,
      cleared: 0,
      update(text) {
        shown.push(text);
      },
      done() {
        this.cleared++;
      },
    };
  }

  it("draws each update through its renderer and clears on done", () => {
    const line = recorder();
    const progress = progressLine(line, (n: number) => `step ${n}`);
    progress.update(1);
    progress.update(2);
    progress.done();
    expect(line.shown).toEqual(["step 1", "step 2"]);
    expect(line.cleared).toBe(1);
  });

  it("drops updates inside the interval but never the final one", () => {
    const line = recorder();
    const progress = progressLine(line, (n: number) => `${n}/3`, {
      intervalMs: 60_000,
      final: (n) => n === 3,
    });
    progress.update(1);
    progress.update(2);
    progress.update(3);
    expect(line.shown).toEqual(["1/3", "3/3"]);
  });
});
