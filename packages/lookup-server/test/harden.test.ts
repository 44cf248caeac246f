import { mkdir, readFile, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { join } from "node:path";
import { tempDir } from "@psi/testkit/tmp";
import { describe, expect, it } from "vitest";
import { hardenProcess, isDumpable, koffiNative, swapExposure } from "../src/index.js";

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

  it("loads koffi's native module directly, of koffi's own version, and says when it cannot", () => {
    const koffiPackage = createRequire(createRequire(import.meta.url).resolve("koffi"))(
      "./package.json",
    ) as { version: string };
    const native = koffiNative() as unknown as { version: string; load: unknown };
    expect(native.version).toBe(koffiPackage.version);
    expect(typeof native.load).toBe("function");
    // No such platform package: undefined, and bindLibc falls back to koffi's own entry.
    expect(koffiNative("linux", "no-such-arch")).toBeUndefined();
  });

  it("reports, never throws, where it cannot harden", async () => {
    const result = await hardenProcess("darwin");
    expect(result.nonDumpable).toBe(false);
    expect(result.problems[0]).toContain("Linux only");
  });
});

describe("swapExposure", () => {
  // Files in the formats of /proc/swaps, /proc/self/cgroup and a cgroup v2 tree.
  const SWAPS_HEADER = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n";
  const SWAP_LINE = "/swapfile                               file\t\t1048572\t\t0\t\t-2\n";

  it("protected without active swap; otherwise only where a cgroup forbids it", async () => {
    const dir = await tempDir();
    try {
      const swaps = join(dir.path, "swaps");
      const cgroup = join(dir.path, "cgroup");
      const cgroupRoot = join(dir.path, "fs");
      await mkdir(join(cgroupRoot, "system.slice", "psi-secrets.service"), { recursive: true });
      await writeFile(cgroup, "0::/system.slice/psi-secrets.service\n");
      await writeFile(swaps, SWAPS_HEADER);
      expect(await swapExposure({ swaps, cgroup, cgroupRoot })).toMatchObject({
        protected: true,
        reason: "no swap is active on this host",
      });
      await writeFile(swaps, SWAPS_HEADER + SWAP_LINE);
      await writeFile(
        join(cgroupRoot, "system.slice", "psi-secrets.service", "memory.swap.max"),
        "max\n",
      );
      const exposed = await swapExposure({ swaps, cgroup, cgroupRoot });
      expect(exposed.protected).toBe(false);
      expect(exposed.reason).toContain("MemorySwapMax=0");
      await writeFile(join(cgroupRoot, "system.slice", "memory.swap.max"), "0\n");
      expect(await swapExposure({ swaps, cgroup, cgroupRoot })).toMatchObject({
        protected: true,
        reason: "cgroup /system.slice forbids swap (memory.swap.max 0)",
      });
    } finally {
      await dir.cleanup();
    }
  });
});
