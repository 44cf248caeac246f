#!/usr/bin/env node
// Runs every package's tests in one vitest run (one summary line for CI) and then prints
// the plain closing line "Tests: N passed, N failed, N skipped" that any CI log reader
// understands. The exit code is vitest's.
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const report = join(root, ".turbo", "vitest-report.json");
mkdirSync(dirname(report), { recursive: true });

const vitest = join(root, "node_modules", ".bin", "vitest");
const result = spawnSync(
  vitest,
  ["run", "--reporter=default", "--reporter=json", `--outputFile.json=${report}`, ...process.argv.slice(2)],
  { cwd: root, stdio: "inherit" },
);

try {
  const summary = JSON.parse(readFileSync(report, "utf8"));
  const skipped = (summary.numPendingTests ?? 0) + (summary.numTodoTests ?? 0);
  console.log(`Tests: ${summary.numPassedTests} passed, ${summary.numFailedTests} failed, ${skipped} skipped`);
  if (summary.numTotalTests === 0) {
    console.error("no test ran");
    process.exit(1);
  }
} catch (error) {
  console.error(`could not read the test report (${error.message})`);
  if (result.status === 0) process.exit(1);
}
process.exit(result.status ?? 1);
