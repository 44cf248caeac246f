import { generateKeyPairSync } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  decodeCacheFile,
  encodeCacheFile,
  hybridBackend,
  openHybrid,
  sealHybrid,
  softwareUnwrap,
  TAG_HSM,
} from "../src/index.js";
import { rejection } from "./errors.js";
import { vector } from "./vectors.js";

const publicKeyDer = vector("hsm-public-key.der");
const privateKeyPem = vector("hsm-private-key.pem").toString("utf8");
const allBytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));

describe("hybrid blobs (SPEC §6.4)", () => {
  it("key_len(u16 BE) || RSA-OAEP(aes key) || nonce(12) || ct || tag(16)", () => {
    const blob = sealHybrid(Buffer.from("hello"), publicKeyDer);
    expect(blob.length).toBe(2 + 256 + 12 + 5 + 16);
    expect([blob[0], blob[1]]).toEqual([0x01, 0x00]);
  });

  for (const hash of ["sha256", "sha1"] as const) {
    it(`round-trips empty and binary plaintexts with OAEP ${hash}`, async () => {
      const unwrap = softwareUnwrap(privateKeyPem, hash);
      for (const plaintext of [new Uint8Array(0), allBytes, Buffer.alloc(100_000, 0xab)]) {
        const blob = sealHybrid(plaintext, publicKeyDer, hash);
        expect(Buffer.from(await openHybrid(blob, unwrap)).equals(Buffer.from(plaintext))).toBe(
          true,
        );
      }
    });
  }

  it("a blob sealed with one OAEP hash does not open with the other", async () => {
    const blob = sealHybrid(Buffer.from("x"), publicKeyDer, "sha1");
    const error = await rejection(openHybrid(blob, softwareUnwrap(privateKeyPem, "sha256")));
    expect(error.code).toBe("auth_failed");
    expect(error.message).toMatch(/RSA-OAEP-SHA256/);
  });

  it("accepts a PKCS#1 public key and an async unwrap", async () => {
    const { publicKey, privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const der = publicKey.export({ format: "der", type: "pkcs1" });
    const unwrap = softwareUnwrap(privateKey.export({ format: "pem", type: "pkcs1" }).toString());
    const blob = sealHybrid(Buffer.from("pkcs1"), der);
    const opened = await openHybrid(blob, async (wrapped) => unwrap(wrapped));
    expect(Buffer.from(opened).toString()).toBe("pkcs1");
  });

  it("rejects a public key that is not RSA DER", () => {
    expect(() => sealHybrid(Buffer.from("x"), Buffer.from("not a key"))).toThrow(
      /not an RSA public key/,
    );
  });

  it("tampering with any byte after key_len fails with auth_failed", async () => {
    const blob = sealHybrid(Buffer.from("secret"), publicKeyDer);
    const unwrap = softwareUnwrap(privateKeyPem);
    for (let i = 2; i < blob.length; i++) {
      const bad = Buffer.from(blob);
      bad[i] = (bad[i] as number) ^ 0x80;
      expect((await rejection(openHybrid(bad, unwrap))).code).toBe("auth_failed");
    }
  });

  it("truncated blobs fail with truncated", async () => {
    const blob = sealHybrid(Buffer.from(""), publicKeyDer);
    const unwrap = softwareUnwrap(privateKeyPem);
    for (const n of [0, 1, 2, 100, 258, blob.length - 1]) {
      const error = await rejection(openHybrid(blob.subarray(0, n), unwrap));
      expect(error.code).toBe("truncated");
      expect(error.message).toMatch(/^hybrid blob truncated/);
    }
  });

  it("an unwrap result that is not a 32-byte key is bad_payload", async () => {
    const blob = sealHybrid(Buffer.from("x"), publicKeyDer);
    expect((await rejection(openHybrid(blob, () => new Uint8Array(16)))).code).toBe("bad_payload");
  });

  it("errors of the unwrap itself (the token) pass through unchanged", async () => {
    const blob = sealHybrid(Buffer.from("x"), publicKeyDer);
    const tokenError = new Error("CKR_PIN_INCORRECT");
    await expect(openHybrid(blob, () => Promise.reject(tokenError))).rejects.toBe(tokenError);
  });
});

describe("hybridBackend (hsm payloads)", () => {
  it("round-trips a cache file with tag 0x02 by default, sha256 and sha1", async () => {
    for (const hash of ["sha256", "sha1"] as const) {
      const cipher = hybridBackend({
        publicKeyDer,
        unwrap: softwareUnwrap(privateKeyPem, hash),
        hash,
      });
      expect(cipher.tag).toBe(TAG_HSM);
      const hmacKey = Buffer.alloc(32, 9);
      const entries = new Map<string, Uint8Array>([
        ["00", new Uint8Array(0)],
        ["01", allBytes],
      ]);
      const file = await encodeCacheFile({ hmacKey, entries, writtenAt: 5 }, cipher);
      expect(file[5]).toBe(TAG_HSM);
      const cache = await decodeCacheFile(file, cipher);
      expect(Buffer.from(cache.entries.get("01") as Uint8Array).equals(allBytes)).toBe(true);
      expect((cache.entries.get("00") as Uint8Array).length).toBe(0);
      expect(cache.writtenAt).toBe(5);
    }
  });

  it("takes another tag when given, and names the file in unwrap failures", async () => {
    const cipher = hybridBackend({
      publicKeyDer,
      unwrap: softwareUnwrap(privateKeyPem),
      tag: 0x42,
    });
    const file = await encodeCacheFile({ hmacKey: Buffer.alloc(32), entries: new Map() }, cipher);
    expect(file[5]).toBe(0x42);
    const wrongKey = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey;
    const other = hybridBackend({
      publicKeyDer,
      unwrap: softwareUnwrap(wrongKey.export({ format: "pem", type: "pkcs8" }).toString()),
      tag: 0x42,
    });
    const error = await rejection(decodeCacheFile(file, other, { path: "/p/cache.enc" }));
    expect(error.code).toBe("auth_failed");
    expect(error.message).toMatch(/^\/p\/cache\.enc: could not unwrap the AES key/);
  });
});
