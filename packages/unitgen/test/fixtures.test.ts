import { mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { renderUnits } from "../src/index.js";
import { FIXTURE_CASES, IMAGE, NATIVE, settingsFor } from "./configs.js";

// Exact-text comparison with reviewed fixtures. After a deliberate change, regenerate
// with UPDATE_FIXTURES=1, read the diff, and commit it with the change.
const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), "fixtures");
const update = process.env["UPDATE_FIXTURES"] === "1";

async function listFiles(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).sort();
  } catch {
    return [];
  }
}

describe("generated files match the reviewed fixtures", () => {
  for (const testCase of FIXTURE_CASES) {
    for (const mode of ["native", "container"] as const) {
      it(`${testCase.name} / ${mode}`, async () => {
        const settings = await settingsFor(testCase);
        const files = renderUnits(settings, {
          mode,
          image: IMAGE,
          ...NATIVE,
          socketActivation: testCase.socketActivation,
        });
        const dir = join(FIXTURES, testCase.name, mode);
        if (update) {
          await rm(dir, { recursive: true, force: true });
          await mkdir(dir, { recursive: true });
          for (const file of files) await writeFile(join(dir, file.path), file.text);
        }
        expect(files.map((f) => f.path).sort()).toEqual(await listFiles(dir));
        for (const file of files) {
          expect(file.text, file.path).toBe(await readFile(join(dir, file.path), "utf8"));
        }
      });
    }
  }
});
