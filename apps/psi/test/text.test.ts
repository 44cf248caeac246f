import { describe, expect, it } from "vitest";
import { plural, table } from "../src/text.js";

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
});
