import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

const run = promisify(execFile);

// unitgen is pure text rendering: loading its built entry must not load core's config
// parser (valibot, yaml). A child Node (not vitest's loader) records every module it
// resolves while importing the package by name, as a consumer would.
const PROBE = `
import { registerHooks } from "node:module";
const loaded = [];
registerHooks({
  resolve(specifier, context, next) {
    const result = next(specifier, context);
    loaded.push(result.url);
    return result;
  },
});
const unitgen = await import("@psi/unitgen");
console.log(JSON.stringify({ loaded, exports: Object.keys(unitgen).length }));
`;

describe("@psi/unitgen at runtime", () => {
  it("loads its dist and core's error class, not valibot or yaml", async () => {
    const { stdout } = await run(process.execPath, ["--input-type=module", "-e", PROBE], {
      cwd: import.meta.dirname,
      encoding: "utf8",
    });
    const { loaded, exports } = JSON.parse(stdout) as { loaded: string[]; exports: number };
    expect(exports).toBeGreaterThan(0);
    expect(loaded.some((url) => url.endsWith("/unitgen/dist/index.js"))).toBe(true);
    expect(loaded.some((url) => url.endsWith("/core/dist/errors.js"))).toBe(true);
    expect(loaded.filter((url) => /\/(valibot|yaml)\//.test(url))).toEqual([]);
    expect(loaded.filter((url) => url.endsWith("/core/dist/index.js"))).toEqual([]);
  });
});
