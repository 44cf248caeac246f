import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { base64DecodedLength, readBase64, writeBase64 } from "../src/base64.js";
import { compareCodePoints, decodePayload, encodePayload, pythonJsonDumps } from "../src/index.js";
import { hexKeyOrder } from "../src/key-order.js";
import { decodeCanonical, encodeHexKeyed } from "../src/payload.js";

// The payload codec has a fast path for what PSI writes (hex keys, padded base64) and the
// general one for anything else; these properties hold the two to the same bytes and maps.

const hmacKey = Buffer.alloc(32, 0x42);
const hex = fc.string({
  unit: fc.constantFrom(..."0123456789abcdef"),
  minLength: 8,
  maxLength: 64,
});
// Few distinct prefixes, so keys often share their first 8 digits (the radix sort's ties).
const sharedPrefix = fc
  .tuple(fc.constantFrom("00000000", "0000000a", "ffffffff", "12345678"), fc.string())
  .map(([prefix, tail]) => prefix + tail);
const value = fc.uint8Array({ maxLength: 12 });
/** Payload entries: PSI's hex keys, keys sharing a prefix, and any other string. */
const pairs = fc.array(fc.tuple(fc.oneof(hex, sharedPrefix, fc.string()), value), {
  maxLength: 40,
});
/** What PSI writes: keys starting with 8 lowercase hex digits, nothing to escape. */
const psiKey = /^[0-9a-f]{8}[\x20-\x21\x23-\x5b\x5d-\x7e]*$/;

/** The payload as Python's json.dumps(sort_keys=True, separators=(",", ":")) writes it. */
function reference(entries: Map<string, Uint8Array>, writtenAt: number): string {
  // fromEntries defines own properties: a "__proto__" key stays an entry, as in Python
  const object = Object.fromEntries(
    [...entries].map(([key, bytes]) => [key, Buffer.from(bytes).toString("base64")]),
  );
  return pythonJsonDumps(
    {
      entries: object,
      hmac_key: hmacKey.toString("base64"),
      version: 2,
      written_at: writtenAt,
    },
    { sortKeys: true, separators: [",", ":"] },
  );
}

function sorted(entries: Map<string, Uint8Array>): Array<[string, string]> {
  return [...entries]
    .map(([key, bytes]): [string, string] => [key, Buffer.from(bytes).toString("hex")])
    .sort(([a], [b]) => compareCodePoints(a, b));
}

describe("payload codec fast path (SPEC §6.2)", () => {
  it("writes exactly the reference bytes, hex keys or not", () => {
    fc.assert(
      fc.property(pairs, fc.nat(), (generated, writtenAt) => {
        const entries = new Map(generated);
        const text = Buffer.from(encodePayload({ hmacKey, entries, writtenAt })).toString("latin1");
        expect(text).toBe(reference(entries, writtenAt));
        const fast = encodeHexKeyed(entries, text.slice(text.indexOf('},"hmac_key"')));
        expect(fast !== undefined).toBe([...entries.keys()].every((key) => psiKey.test(key)));
      }),
      { numRuns: 500 },
    );
  });

  it("reads what JSON.parse reads from the same payload", () => {
    fc.assert(
      fc.property(pairs, fc.nat(), (generated, writtenAt) => {
        const entries = new Map(generated);
        const text = reference(entries, writtenAt);
        const fast = decodePayload(Buffer.from(text, "latin1"));
        const printable = /^[\x20-\x21\x23-\x5b\x5d-\x7e]*$/;
        expect(decodeCanonical(Buffer.from(text, "latin1")) !== undefined).toBe(
          [...entries.keys()].every((key) => printable.test(key)),
        );
        // A space after the first brace is still the same JSON, but only JSON.parse reads it.
        const general = decodePayload(Buffer.from(`{ ${text.slice(1)}`, "latin1"));
        expect(sorted(fast.entries)).toEqual(sorted(entries));
        expect(sorted(fast.entries)).toEqual(sorted(general.entries));
        expect(fast.writtenAt).toBe(writtenAt);
        expect(Buffer.from(fast.hmacKey)).toEqual(hmacKey);
        expect(fast.legacy).toBe(false);
      }),
      { numRuns: 500 },
    );
  });

  it("keeps keys that name Object.prototype's members, both ways (seed 970402438)", () => {
    const entries = new Map<string, Uint8Array>([
      ["__proto__", Buffer.from("")],
      ["constructor", Buffer.from("c")],
      ["toString", Buffer.from("t")],
    ]);
    const text = reference(entries, 0);
    expect(text).toContain('"__proto__":""');
    expect(Buffer.from(encodePayload({ hmacKey, entries, writtenAt: 0 })).toString("latin1")).toBe(
      text,
    );
    expect(sorted(decodePayload(Buffer.from(text, "latin1")).entries)).toEqual(sorted(entries));
    const spaced = decodePayload(Buffer.from(`{ ${text.slice(1)}`, "latin1"));
    expect(sorted(spaced.entries)).toEqual(sorted(entries));
  });

  it("falls back to JSON.parse (and its errors) for anything but the exact layout", () => {
    const b64 = hmacKey.toString("base64");
    const ok = (text: string) => decodePayload(Buffer.from(text, "utf8"));
    expect(
      ok(
        `{"entries":{"a\\u0062":"eA=="},"hmac_key":"${b64}","version":2,"written_at":1}`,
      ).entries.get("ab"),
    ).toEqual(Buffer.from("x"));
    expect(ok(`{"entries":{},"version":2,"hmac_key":"${b64}","written_at":1.5}`).writtenAt).toBe(
      1.5,
    );
    expect(
      ok(
        `{"entries":{"k":"eA=="},"hmac_key":"${b64}","version":2,"written_at":12345678901234567890}`,
      ).writtenAt,
    ).toBe(12345678901234567000);
    expect(() =>
      ok(`{"entries":{"k":"eA=="},"hmac_key":"${b64}","version":2,"written_at":01}`),
    ).toThrow(/not UTF-8 JSON/);
    expect(() =>
      ok(`{"entries":{"k":"e=A="},"hmac_key":"${b64}","version":2,"written_at":1}`),
    ).toThrow(/entry "k"/);
    expect(() =>
      ok(`{"entries":{"k":"eA=="},"hmac_key":"${b64}","version":2,"written_at":1}x`),
    ).toThrow(/not UTF-8 JSON/);
    expect(() =>
      ok(`{"entries":{"k":"eA==";"j":"eA=="},"hmac_key":"${b64}","version":2,"written_at":1}`),
    ).toThrow(/not UTF-8 JSON/);
  });
});

describe("base64 between byte arrays", () => {
  it("encodes and decodes as Buffer does", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        const out = Buffer.alloc(Math.ceil(bytes.length / 3) * 4 + 2);
        const end = writeBase64(bytes, out, 1);
        const text = Buffer.from(bytes).toString("base64");
        expect(out.toString("latin1", 1, end)).toBe(text);
        expect(base64DecodedLength(out, 1, end)).toBe(bytes.length);
        const back = Buffer.alloc(bytes.length + 2);
        expect(readBase64(out, 1, end, back, 1)).toBe(bytes.length + 1);
        expect(back.subarray(1, bytes.length + 1)).toEqual(Buffer.from(bytes));
      }),
      { numRuns: 500 },
    );
  });

  it("accepts exactly what the strict base64 pattern accepts", () => {
    const strict = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
    fc.assert(
      fc.property(
        fc.string({ unit: fc.constantFrom(..."Az09+/=-_ .\u00e9"), maxLength: 12 }),
        (text) => {
          const bytes = Buffer.from(text, "latin1");
          expect(base64DecodedLength(bytes, 0, bytes.length) >= 0).toBe(strict.test(text));
        },
      ),
      { numRuns: 3000 },
    );
  });
});

describe("hexKeyOrder", () => {
  it("orders keys by code point, ties on the hex prefix included", () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(hex, sharedPrefix)), (keys) => {
        const order = hexKeyOrder(keys);
        expect(order).toBeDefined();
        expect(Array.from(order ?? [], (i) => keys[i])).toEqual([...keys].sort(compareCodePoints));
      }),
      { numRuns: 500 },
    );
  });

  it("declines keys that do not start with 8 lowercase hex digits", () => {
    expect(hexKeyOrder(["0123456789", "0123456"])).toBeUndefined();
    expect(hexKeyOrder(["0123456789", "0123456A"])).toBeUndefined();
    expect(hexKeyOrder(["0123456\u0660"])).toBeUndefined();
  });
});
