import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

// What another Node tool sees: the built packages, resolved from the workspace root with
// the default export conditions (not the "@psi/source" condition the tests use).
const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const published = readdirSync(join(root, "packages"))
  .map((dir) => JSON.parse(readFileSync(join(root, "packages", dir, "package.json"), "utf8")))
  .filter((pkg) => !pkg.private)
  .map((pkg) => pkg.name as string);

describe("built packages import from the workspace root", () => {
  it.each(published)("%s", (name) => {
    const out = execFileSync(
      process.execPath,
      [
        "--input-type=module",
        "-e",
        `const m = await import(${JSON.stringify(name)}); console.log(Object.keys(m).length);`,
      ],
      { cwd: root, encoding: "utf8" },
    );
    expect(Number(out.trim())).toBeGreaterThan(0);
  });

  it("the CLI package's bin entry runs", () => {
    const cli = JSON.parse(readFileSync(join(root, "apps", "psi", "package.json"), "utf8"));
    const bin = join(root, "apps", "psi", cli.bin.psi as string);
    const out = execFileSync(process.execPath, [bin, "--version"], { encoding: "utf8" });
    expect(out.trim()).toBe(cli.version);
    expect(readFileSync(bin, "utf8").startsWith("#!/usr/bin/env node\n")).toBe(true);
  });
});
