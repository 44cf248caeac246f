import { mkdir, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { type Harness, mappingFor, startServer, tableProvider } from "./helpers.js";

// Mapping files that are not what they seem (SPEC §13): each is a clear error for its own
// lookup. FIFOs and /dev/zero would stall or kill this test process if the reader ever
// regressed, so they run against a separate serve in apps/psi/test/hostile-files.test.ts.

let harness: Harness | undefined;
afterEach(async () => {
  await harness?.stop();
  harness = undefined;
});

describe("hostile mapping files", () => {
  it("refuses a symlink (even to a good mapping), a directory and a file over 1 MiB", async () => {
    const provider = tableProvider("infisical", { DB: "db-value" });
    harness = await startServer({ providers: new Map([["infisical", provider]]) });
    await harness.writeMapping("good", mappingFor("DB"));
    await symlink(join(harness.stateDir, "good"), join(harness.stateDir, "linked"));
    await mkdir(join(harness.stateDir, "adir"));
    // valid JSON, one byte over the /store limit
    const big = JSON.stringify(mappingFor("DB"));
    await writeFile(join(harness.stateDir, "big"), big.padEnd(1024 * 1024 + 1, " "));
    const [linked, adir, tooBig, good, healthz] = await Promise.all([
      harness.request({ path: "/lookup/linked" }),
      harness.request({ path: "/lookup/adir" }),
      harness.request({ path: "/lookup/big" }),
      harness.request({ path: "/lookup/good" }),
      harness.request({ path: "/healthz" }),
    ]);
    for (const [answer, detail] of [
      [linked, "is a symbolic link"],
      [adir, "is a directory"],
      [tooBig, "larger than 1048576 bytes"],
    ] as const) {
      expect(answer?.status).toBe(500);
      expect(JSON.parse(answer?.text ?? "{}")).toMatchObject({
        error: "corrupt_mapping",
        detail: expect.stringContaining(detail),
      });
    }
    expect(good?.text).toBe("db-value");
    expect(healthz?.status).toBe(200);
    const warnings = harness.log.records().filter((r) => r.level === "warn");
    expect(warnings.map((r) => r["code"]).sort()).toEqual([
      "fs.not_regular",
      "fs.symlink",
      "fs.too_large",
    ]);
    expect(warnings.every((r) => String(r["hint"]).includes("store it again"))).toBe(true);
  });
});
