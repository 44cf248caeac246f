import { describe, expect, it } from "vitest";
import {
  aesGcmBackend,
  decodeCacheFile,
  decodePayload,
  encodePayload,
  TAG_TPM,
  writeHeader,
} from "../src/index.js";
import { thrown } from "./errors.js";

const hmacKey = Buffer.alloc(32, 0x11);
const hmacKeyB64 = hmacKey.toString("base64");

const payloadError = (text: string) => thrown(() => decodePayload(Buffer.from(text, "utf8")));

describe("payload JSON (SPEC §6.2)", () => {
  it("is sorted, spaceless, ensure_ascii JSON exactly like the reference", () => {
    const entries = new Map<string, Uint8Array>([
      ["b", Buffer.from([0xff])],
      ["a", new Uint8Array(0)],
      ["\ue000", Buffer.from("x")],
      ["😀", Buffer.from("y")],
      ['q"\\', Buffer.from("z")],
    ]);
    const text = Buffer.from(encodePayload({ hmacKey, entries, writtenAt: 42 })).toString("latin1");
    // Python: json.dumps(p, sort_keys=True, separators=(",", ":")) — code point order
    // puts U+E000 before U+1F600, unlike a UTF-16 sort.
    expect(text).toBe(
      '{"entries":{"a":"","b":"/w==","q\\"\\\\":"eg==","\\ue000":"eA==","\\ud83d\\ude00":"eQ=="},' +
        `"hmac_key":"${hmacKeyB64}","version":2,"written_at":42}`,
    );
    const back = decodePayload(Buffer.from(text, "latin1"));
    expect([...back.entries.keys()].sort()).toEqual([...entries.keys()].sort());
    expect(back.writtenAt).toBe(42);
  });

  it("defaults written_at to the current Unix second", () => {
    const before = Math.floor(Date.now() / 1000);
    const { writtenAt } = decodePayload(encodePayload({ hmacKey, entries: new Map() }));
    expect(writtenAt).toBeGreaterThanOrEqual(before);
    expect(Number.isInteger(writtenAt)).toBe(true);
  });

  it("refuses to write an HMAC key that is not 32 bytes or a fractional written_at", () => {
    expect(() => encodePayload({ hmacKey: Buffer.alloc(31), entries: new Map() })).toThrow(
      RangeError,
    );
    expect(() => encodePayload({ hmacKey, entries: new Map(), writtenAt: 1.5 })).toThrow(
      RangeError,
    );
  });

  it("round-trips 10,000 entries (linear encoder, no timing asserted here; see README)", () => {
    const entries = new Map<string, Uint8Array>();
    for (let i = 0; i < 10_000; i++)
      entries.set(i.toString(16).padStart(64, "0"), Buffer.from(`v${i}`));
    const back = decodePayload(encodePayload({ hmacKey, entries, writtenAt: 1 }));
    expect(back.entries.size).toBe(10_000);
    expect(
      Buffer.from(back.entries.get((9999).toString(16).padStart(64, "0")) as Uint8Array).toString(),
    ).toBe("v9999");
  });

  it("version 1 loads empty, legacy, with a new HMAC key from the random source", () => {
    const fresh = Buffer.alloc(32, 0x77);
    const back = decodePayload(
      Buffer.from('{"entries":{"a1b2":"eA=="},"version":1,"written_at":7}'),
      {
        randomBytes: () => fresh,
      },
    );
    expect(back).toEqual({ hmacKey: fresh, entries: new Map(), writtenAt: 7, legacy: true });
  });

  const bad: Array<[string, string, RegExp]> = [
    ["not JSON", "{", /payload is not UTF-8 JSON/],
    ["not an object", "[1]", /not a JSON object/],
    ["no version", `{"entries":{},"hmac_key":"${hmacKeyB64}","written_at":1}`, /"version"/],
    [
      "version 3",
      `{"entries":{},"hmac_key":"${hmacKeyB64}","version":3,"written_at":1}`,
      /version 3 is not supported/,
    ],
    [
      "entries array",
      `{"entries":[],"hmac_key":"${hmacKeyB64}","version":2,"written_at":1}`,
      /"entries"/,
    ],
    [
      "value not base64",
      `{"entries":{"k":"!!"},"hmac_key":"${hmacKeyB64}","version":2,"written_at":1}`,
      /entry "k"/,
    ],
    [
      "value not a string",
      `{"entries":{"k":1},"hmac_key":"${hmacKeyB64}","version":2,"written_at":1}`,
      /entry "k"/,
    ],
    [
      "short hmac key",
      '{"entries":{},"hmac_key":"AAAA","version":2,"written_at":1}',
      /3 bytes, expected 32/,
    ],
    ["no hmac key", '{"entries":{},"version":2,"written_at":1}', /"hmac_key"/],
    ["no written_at", `{"entries":{},"hmac_key":"${hmacKeyB64}","version":2}`, /"written_at"/],
  ];
  for (const [what, text, message] of bad) {
    it(`bad_payload: ${what}`, () => {
      const error = payloadError(text);
      expect(error.code).toBe("bad_payload");
      expect(error.message).toMatch(message);
    });
  }

  it("bad_payload on invalid UTF-8", () => {
    expect(() => decodePayload(Buffer.from([0x7b, 0xff, 0x7d]))).toThrow(/not UTF-8 JSON/);
  });

  it("decodeCacheFile names the file in payload errors and never echoes values", async () => {
    const key = Buffer.alloc(32, 3);
    const cipher = aesGcmBackend(key, TAG_TPM);
    const secret = "sup3r-secret-value";
    const plaintext = Buffer.from(
      `{"entries":{"k":"${secret}?"},"hmac_key":"${hmacKeyB64}","version":2,"written_at":1}`,
    );
    const file = writeHeader(TAG_TPM, await cipher.encrypt(plaintext));
    const error = await decodeCacheFile(file, cipher, { path: "/s/cache.enc" }).catch(
      (e: unknown) => e,
    );
    expect(error).toMatchObject({ code: "bad_payload", path: "/s/cache.enc" });
    expect((error as Error).message).toMatch(/^\/s\/cache\.enc: payload has the wrong shape/);
    expect((error as Error).message).not.toContain(secret);
  });
});
