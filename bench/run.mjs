#!/usr/bin/env node
// Runs the benchmarks: every bench/*.bench.mjs (sorted), or only the names given
// (`node bench/run.mjs lookup serve-start`). Each file exports `default async function
// (context)` and returns a summary object; the summaries are printed and written to
// bench/results/<name>.json. Benchmarks need the build (`pnpm exec turbo run build`).
// Every load targets Unix sockets in a temp dir, is bounded, and stops by itself.
import { existsSync } from "node:fs";
import { mkdir, readdir, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const root = dirname(here);
const wanted = process.argv.slice(2).map((name) => name.replace(/\.bench\.mjs$/, ""));
const files = (await readdir(here))
  .filter((name) => name.endsWith(".bench.mjs"))
  .filter((name) => wanted.length === 0 || wanted.includes(basename(name, ".bench.mjs")))
  .sort();
if (files.length === 0) {
  console.error(`no benchmarks match ${wanted.join(", ") || "bench/*.bench.mjs"}`);
  process.exit(2);
}
if (!existsSync(join(root, "apps/psi/dist/cli.js"))) {
  console.error("bench: build first: pnpm exec turbo run build --filter=@psi/cli...");
  process.exit(2);
}
await mkdir(join(here, "results"), { recursive: true });
let failed = 0;
const goals = [];
for (const file of files) {
  const name = basename(file, ".bench.mjs");
  console.log(`\n## ${name}`);
  const started = performance.now();
  try {
    const module = await import(pathToFileURL(join(here, file)).href);
    const summary = await module.default({ root, log: (line) => console.log(line) });
    for (const row of summary?.goals ?? []) goals.push({ bench: name, ...row });
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    console.log(`(${name}: ${seconds} s)`);
    await writeFile(
      join(here, "results", `${name}.json`),
      `${JSON.stringify({ name, at: new Date().toISOString(), node: process.version, summary }, null, 2)}\n`,
    );
  } catch (error) {
    failed++;
    console.error(
      `${name} failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`,
    );
  }
}
// One table of every goal, each a ratio against a floor measured in the same run.
if (goals.length > 0) {
  const lines = [
    "| goal | target | measured | |",
    "|---|---|---|---|",
    ...goals.map(
      (g) => `| ${g.goal} | ${g.target} | ${g.measured} | ${g.pass ? "pass" : "**FAIL**"} |`,
    ),
  ];
  console.log(
    `\n## goals (${new Date().toISOString()}, node ${process.version})\n${lines.join("\n")}`,
  );
  await writeFile(join(here, "results", "goals.md"), `${lines.join("\n")}\n`);
}
process.exitCode = failed === 0 ? 0 : 1;
