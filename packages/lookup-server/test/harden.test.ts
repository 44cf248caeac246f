import { readFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import { hardenProcess, isDumpable } from "../src/index.js";

// Vitest runs each test file in its own worker process: hardening it touches nothing else.
describe("hardenProcess", () => {
  it("makes the process non-dumpable and sets RLIMIT_CORE to 0", async () => {
    expect(await isDumpable()).not.toBe(0);
    const result = await hardenProcess();
    expect(result).toEqual({ nonDumpable: true, noCoreDumps: true, problems: [] });
    expect(await isDumpable()).toBe(0);
    const limits = await readFile("/proc/self/limits", "utf8");
    expect(limits).toMatch(/Max core file size\s+0\s+0\s+bytes/);
  });

  it("reports, never throws, where it cannot harden", async () => {
    const result = await hardenProcess("darwin");
    expect(result.nonDumpable).toBe(false);
    expect(result.problems[0]).toContain("Linux only");
  });
});
