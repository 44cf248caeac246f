import { closeSync, fstatSync, openSync } from "node:fs";
import { join } from "node:path";
import { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import {
  envFlag,
  isPsiError,
  readAll,
  readSecretInput,
  snakeCaseKeys,
  stderrIsJournal,
} from "../src/index.js";
import { tempDir } from "./helpers/tmp.js";

describe("stderrIsJournal", () => {
  it("is true only for the file JOURNAL_STREAM names by device and inode", async () => {
    const dir = await tempDir();
    const journal = openSync(join(dir.path, "journal"), "w");
    const other = openSync(join(dir.path, "other"), "w");
    try {
      const stat = fstatSync(journal, { bigint: true });
      const env = { JOURNAL_STREAM: `${stat.dev}:${stat.ino}` };
      expect(stderrIsJournal(env, { fd: journal })).toBe(true);
      expect(stderrIsJournal(env, { fd: other })).toBe(false);
      expect(stderrIsJournal({}, { fd: journal })).toBe(false);
      // A stream without a descriptor cannot be checked: trust the variable.
      expect(stderrIsJournal(env, {})).toBe(true);
    } finally {
      closeSync(journal);
      closeSync(other);
      await dir.cleanup();
    }
  });
});

describe("envFlag", () => {
  it("reads the words click reads, any case, and nothing else", () => {
    for (const word of ["1", "true", "T", "yes", "y", " on "]) expect(envFlag(word)).toBe(true);
    for (const word of ["0", "FALSE", "f", "no", "n", "off"]) expect(envFlag(word)).toBe(false);
    for (const word of [undefined, "", "  ", "maybe"]) expect(envFlag(word)).toBeUndefined();
  });
});

describe("snakeCaseKeys", () => {
  it("renames keys at every depth and leaves values and dates alone", () => {
    const date = new Date(0);
    expect(
      snakeCaseKeys({ staleOpts: 1, list: [{ byOutcome: { okCount: "camelCase" } }], at: date }),
    ).toEqual({ stale_opts: 1, list: [{ by_outcome: { ok_count: "camelCase" } }], at: date });
  });
});

describe("readSecretInput", () => {
  it("returns the bytes and zeroes the chunks it copied", async () => {
    const chunks = [Buffer.from("sec"), "ret"];
    expect((await readAll(Readable.from(chunks))).toString()).toBe("secret");
    expect((await readSecretInput(Readable.from(["v"]), "local store x")).toString()).toBe("v");
  });

  it("refuses a terminal and an empty stdin, naming the command in the hint", async () => {
    const tty = Object.assign(Readable.from(["v"]), { isTTY: true });
    const error = await readSecretInput(tty, "local store x").catch((e: unknown) => e);
    expect(isPsiError(error, "input.tty")).toBe(true);
    expect((error as { hint?: string }).hint).toContain("| psi local store x");
    const empty = await readSecretInput(Readable.from([]), "local store x").catch((e) => e);
    expect(isPsiError(empty, "input.empty")).toBe(true);
  });
});
