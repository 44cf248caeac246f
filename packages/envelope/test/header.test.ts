import { describe, expect, it } from "vitest";
import {
  backendName,
  MAGIC,
  readHeader,
  TAG_HSM,
  TAG_KEYFILE,
  TAG_TPM,
  writeHeader,
} from "../src/index.js";
import { thrown } from "./errors.js";

describe("header (SPEC §6.1)", () => {
  it("has the reference's magic, version and tags", () => {
    expect(MAGIC).toBe("PSIC");
    expect([TAG_TPM, TAG_HSM, TAG_KEYFILE]).toEqual([0x01, 0x02, 0x03]);
    expect([backendName(1), backendName(2), backendName(3), backendName(9)]).toEqual([
      "tpm",
      "hsm",
      "keyfile",
      undefined,
    ]);
  });

  it("writes PSIC, version 0x01, the tag, then the payload", () => {
    expect(Buffer.from(writeHeader(TAG_KEYFILE)).toString("hex")).toBe("505349430103");
    expect(Buffer.from(writeHeader(TAG_HSM, Uint8Array.of(0xaa, 0xbb))).toString("hex")).toBe(
      "505349430102aabb",
    );
    expect(() => writeHeader(256)).toThrow(RangeError);
    expect(() => writeHeader(1.5)).toThrow(RangeError);
  });

  it("reads back what it writes, for any tag, without a key", () => {
    for (let tag = 0; tag < 256; tag++) {
      expect(readHeader(writeHeader(tag, Uint8Array.of(1, 2, 3)))).toEqual({ version: 1, tag });
    }
  });

  it("too_short: fewer than 6 bytes, naming the file", () => {
    for (let n = 0; n < 6; n++) {
      const error = thrown(() =>
        readHeader(writeHeader(TAG_TPM).subarray(0, n), { path: "/x/cache.enc" }),
      );
      expect(error.code).toBe("too_short");
      expect(error.path).toBe("/x/cache.enc");
      expect(error.message).toBe(
        `/x/cache.enc is too short for a PSIC header (${n} bytes, need 6)`,
      );
      expect(error.hint).toBeTruthy();
    }
  });

  it("bad_magic shows what the file starts with", () => {
    const error = thrown(() => readHeader(Buffer.from("PSIX\x01\x01"), { path: "c.enc" }));
    expect(error.code).toBe("bad_magic");
    expect(error.message).toBe(
      'c.enc is not a PSI cache file (starts with 0x50534958, expected "PSIC")',
    );
  });

  it("unsupported_version names both versions", () => {
    const error = thrown(() => readHeader(Buffer.from("PSIC\x02\x01")));
    expect(error.code).toBe("unsupported_version");
    expect(error.message).toBe("cache file has envelope version 0x02; this PSI reads version 0x01");
  });
});
