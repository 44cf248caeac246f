import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  aesGcmBackend,
  type CacheCipher,
  decodeCacheFile,
  EnvelopeError,
  hybridBackend,
  openHybrid,
  readHeader,
  softwareUnwrap,
  TAG_HSM,
  TAG_TPM,
  writeHeader,
} from "../src/index.js";
import { vector } from "./vectors.js";

const key = Buffer.alloc(32, 0x5a);
const aes = aesGcmBackend(key, TAG_TPM);
const unwrap = softwareUnwrap(vector("hsm-private-key.pem").toString("utf8"));
const hybrid = hybridBackend({ publicKeyDer: vector("hsm-public-key.der"), unwrap });

/** Resolves to "ok" or the EnvelopeError's code; any other error fails the property. */
async function outcome(run: () => unknown): Promise<string> {
  try {
    await run();
    return "ok";
  } catch (error) {
    if (error instanceof EnvelopeError) return error.code;
    throw error;
  }
}

const bytes = fc.uint8Array({ maxLength: 400 });
const withHeader = (tag: number) => bytes.map((rest) => writeHeader(tag, rest));

describe("parsers never fail with anything but EnvelopeError (SPEC §13)", () => {
  it("readHeader on arbitrary bytes", () => {
    fc.assert(
      fc.property(bytes, (file) => {
        try {
          const header = readHeader(file);
          expect(header.version).toBe(1);
        } catch (error) {
          expect(error).toBeInstanceOf(EnvelopeError);
        }
      }),
      { numRuns: 2000 },
    );
  });

  for (const [name, cipher] of [
    ["aes-gcm", aes],
    ["hybrid", hybrid],
  ] as Array<[string, CacheCipher]>) {
    it(`decodeCacheFile (${name}) on arbitrary bytes, with and without a valid header`, async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.oneof(bytes, withHeader(cipher.tag), withHeader(TAG_TPM)),
          async (file) => {
            const result = await outcome(() =>
              decodeCacheFile(file, cipher, { path: "/fuzz/cache.enc" }),
            );
            expect(result).not.toBe("ok");
          },
        ),
        { numRuns: name === "hybrid" ? 300 : 1000 },
      );
    });
  }

  it("decodeCacheFile on authentic payloads of arbitrary bytes or JSON: ok or bad_payload", async () => {
    const plaintexts = fc.oneof(
      bytes,
      fc.jsonValue().map((v) => Buffer.from(JSON.stringify(v) ?? "null")),
      fc
        .record({
          entries: fc.oneof(fc.jsonValue(), fc.dictionary(fc.string(), fc.base64String())),
          hmac_key: fc.oneof(fc.jsonValue(), fc.base64String()),
          version: fc.oneof(fc.constantFrom(1, 2, 3), fc.jsonValue()),
          written_at: fc.oneof(fc.integer(), fc.jsonValue()),
        })
        .map((v) => Buffer.from(JSON.stringify(v))),
    );
    await fc.assert(
      fc.asyncProperty(plaintexts, async (plaintext) => {
        const file = writeHeader(TAG_TPM, await aes.encrypt(plaintext));
        const result = await outcome(() => decodeCacheFile(file, aes));
        expect(["ok", "bad_payload"]).toContain(result);
      }),
      { numRuns: 1000 },
    );
  });

  it("openHybrid on arbitrary bytes", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          bytes,
          fc
            .uint8Array({ minLength: 256, maxLength: 256 })
            .map((k) => Buffer.concat([Buffer.of(1, 0), k, Buffer.alloc(40)])),
        ),
        async (blob) => {
          expect(await outcome(() => openHybrid(blob, unwrap))).not.toBe("ok");
        },
      ),
      { numRuns: 300 },
    );
  });

  it("the hsm tag is what hybridBackend writes by default", () => {
    expect(hybrid.tag).toBe(TAG_HSM);
  });
});
