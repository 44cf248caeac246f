import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

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
    // the inspector signal stays off however the bin is started (SPEC §13)
    expect(readFileSync(bin, "utf8").startsWith("#!/usr/bin/env -S node --disable-sigusr1\n")).toBe(
      true,
    );
  });
});

describe("npm's and pnpm's bin shims keep the shebang's Node flags", () => {
  // The whole CLI needs the unpublished workspace packages, so a one-file package carrying
  // the real first line of dist/cli.js stands in for it: the shims only read that line.
  const cli = JSON.parse(readFileSync(join(root, "apps", "psi", "package.json"), "utf8"));
  const shebang = readFileSync(join(root, "apps", "psi", cli.bin.psi as string), "utf8").split(
    "\n",
  )[0]!;
  let dir: string;
  let tarball: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "psi-shim-"));
    const pkg = join(dir, "pkg");
    mkdirSync(pkg);
    writeFileSync(
      join(pkg, "package.json"),
      JSON.stringify({ name: "psi-shebang-probe", version: "1.0.0", bin: { psi: "cli.js" } }),
    );
    writeFileSync(
      join(pkg, "cli.js"),
      `${shebang}\nconsole.log(JSON.stringify({ execArgv: process.execArgv, args: process.argv.slice(2) }));\n`,
      { mode: 0o755 },
    );
    const name = execFileSync("npm", ["pack", "--silent"], { cwd: pkg, encoding: "utf8" }).trim();
    tarball = join(pkg, name);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const expected = { execArgv: ["--disable-sigusr1"], args: ["serve", "--socket", "a b"] };

  it("npm install -g", () => {
    const prefix = join(dir, "global");
    execFileSync("npm", ["install", "-g", "--prefix", prefix, "--no-audit", "--no-fund", tarball], {
      stdio: "ignore",
    });
    const out = execFileSync(join(prefix, "bin", "psi"), expected.args, { encoding: "utf8" });
    expect(JSON.parse(out)).toEqual(expected);
  });

  it("pnpm add", () => {
    const project = join(dir, "project");
    mkdirSync(project);
    writeFileSync(join(project, "package.json"), "{}");
    execFileSync("pnpm", ["add", "--store-dir", join(dir, "store"), tarball], {
      cwd: project,
      stdio: "ignore",
    });
    const bin = join(project, "node_modules", ".bin", "psi");
    const out = execFileSync(bin, expected.args, { encoding: "utf8" });
    expect(JSON.parse(out)).toEqual(expected);
  });
});
