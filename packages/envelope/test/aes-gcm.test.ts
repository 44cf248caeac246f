import { describe, expect, it } from "vitest";
import {
  aesGcmBackend,
  type CacheCipher,
  decodeCacheFile,
  encodeCacheFile,
  openAesGcm,
  sealAesGcm,
  TAG_KEYFILE,
  TAG_TPM,
} from "../src/index.js";
import { rejection } from "./errors.js";

const key = Buffer.from(Array.from({ length: 32 }, (_, i) => i));
const hmacKey = Buffer.from(Array.from({ length: 32 }, (_, i) => 0x40 + i));
const allBytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));

async function roundTrip(cipher: CacheCipher, entries: Map<string, Uint8Array>) {
  const file = await encodeCacheFile({ hmacKey, entries, writtenAt: 1775626954 }, cipher);
  return { file, cache: await decodeCacheFile(file, cipher) };
}

describe("aesGcmBackend (tpm / keyfile payloads)", () => {
  it("round-trips empty, text and binary values for both tags", async () => {
    for (const tag of [TAG_TPM, TAG_KEYFILE]) {
      const entries = new Map<string, Uint8Array>([
        ["aa".repeat(32), new Uint8Array(0)],
        ["bb".repeat(32), Buffer.from("hunter2")],
        ["cc".repeat(32), allBytes],
      ]);
      const { file, cache } = await roundTrip(aesGcmBackend(key, tag), entries);
      expect(file[5]).toBe(tag);
      expect(cache.legacy).toBe(false);
      expect(cache.writtenAt).toBe(1775626954);
      expect(Buffer.from(cache.hmacKey).equals(hmacKey)).toBe(true);
      expect([...cache.entries.keys()]).toEqual([...entries.keys()]);
      for (const [k, v] of entries)
        expect(Buffer.from(cache.entries.get(k) as Uint8Array).equals(v)).toBe(true);
    }
  });

  it("round-trips an empty cache", async () => {
    const { cache } = await roundTrip(aesGcmBackend(key, TAG_TPM), new Map());
    expect(cache.entries.size).toBe(0);
  });

  it("payload is nonce(12) || ciphertext || tag(16), with a fresh nonce per write", () => {
    const a = sealAesGcm(key, Buffer.from("abc"));
    const b = sealAesGcm(key, Buffer.from("abc"));
    expect(a.length).toBe(12 + 3 + 16);
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(false);
    expect(Buffer.from(openAesGcm(key, a)).toString()).toBe("abc");
  });

  it("writes the exact bytes of the reference format (fixed key, nonce, hmac key, written_at)", async () => {
    // Expected bytes were produced by Python `cryptography` AESGCM over the reference's
    // json.dumps(sort_keys=True, separators=(",", ":")) payload; they must never drift.
    const nonce = Buffer.from(Array.from({ length: 12 }, (_, i) => 0xa0 + i));
    const cipher = aesGcmBackend(key, TAG_KEYFILE, { randomBytes: () => Buffer.from(nonce) });
    const entries = new Map<string, Uint8Array>([
      [
        "d81b85a2ff69a931db094b2a76444f42fdcd234057bcea77ea739baedd20f636",
        Buffer.from("00ff1062696e", "hex"),
      ],
      [
        "03d8cf3091ea8e06572156b2dac171e3328fa4effaff584770c56afcf1decd03",
        Buffer.from("db.internal"),
      ],
      ["5fa143c1518d425640d05d8698f816254b6259df4605cd7ac933d191b880baeb", new Uint8Array(0)],
    ]);
    const file = await encodeCacheFile({ hmacKey, entries, writtenAt: 1775626954 }, cipher);
    expect(Buffer.from(file).toString("hex")).toBe(
      "505349430103a0a1a2a3a4a5a6a7a8a9aaab9d3a194331b96bda1147bda8254af3ba48cf3f23a28e7309fd3643b6499e4233" +
        "e343719d9d46325e6eab35ad3a49b1c1217a722d04b67b18276b336a9347b5d3818ae40953c3d58491819b28bcecf698974c" +
        "e2d1a496ac4ab42d74efe8cd3aa9ada8099e65cfbeafadb83765b4b0891c1665579aee51ab094bf7e89d8c33ca7cf323854b" +
        "b174b2220e3d98bf247aa4b5eceecc0887e3c9e8ccf48c9797ff0449a77d7d938c48623aa06e13130dea838045409bae3b07" +
        "970db3e6140965b67d6555017afd54e5ddd9c13b24ac2d16018162dcd38a5c06b98fdaa439d26effb8060d355613890bef0c" +
        "f69e787d035b782e52d0ae4aab2f5ca503c0cc093a584deb3505ebd6aa8ae1b156f111d70c5f25806d614604fe8b8c7ec925" +
        "448f8efed17bcd121ef5666e1c9ad4152a749f97bb7cf435a8307915aacc1c82579fb9afc271bcaa67b5902a5463b1e25a3e" +
        "a031e2954dfab325eb7fe706bc943fb8e18ff30a8185f66a8a",
    );
  });

  it("tampering with any payload byte fails with auth_failed", async () => {
    const cipher = aesGcmBackend(key, TAG_TPM);
    const { file } = await roundTrip(cipher, new Map([["ab", Buffer.from("x")]]));
    for (let i = 6; i < file.length; i++) {
      const bad = Buffer.from(file);
      bad[i] = (bad[i] as number) ^ 0x01;
      const error = await rejection(decodeCacheFile(bad, cipher, { path: "/tmp/c.enc" }));
      expect(error.code).toBe("auth_failed");
      expect(error.message).toMatch(/^\/tmp\/c\.enc: authentication failed/);
    }
  });

  it("a wrong key fails with auth_failed", async () => {
    const { file } = await roundTrip(aesGcmBackend(key, TAG_TPM), new Map());
    const other = aesGcmBackend(Buffer.alloc(32, 7), TAG_TPM);
    expect((await rejection(decodeCacheFile(file, other))).code).toBe("auth_failed");
  });

  it("tag_mismatch names both backends and how to fix it", async () => {
    const { file } = await roundTrip(aesGcmBackend(key, TAG_TPM), new Map());
    const error = await rejection(
      decodeCacheFile(file, aesGcmBackend(key, TAG_KEYFILE), { path: "/var/lib/psi/cache.enc" }),
    );
    expect(error.code).toBe("tag_mismatch");
    expect(error.path).toBe("/var/lib/psi/cache.enc");
    expect(error.message).toBe(
      "/var/lib/psi/cache.enc was written by the tpm backend (tag 0x01) but the configured backend is " +
        "the keyfile backend (tag 0x03); re-run `psi cache init --backend keyfile` (then `psi setup`) " +
        "for the configured backend, or set cache.backend: tpm to match the file",
    );
    expect(error.hint).toContain("psi cache init --backend keyfile");
  });

  it("rejects keys that are not 32 bytes", () => {
    expect(() => aesGcmBackend(Buffer.alloc(16), TAG_TPM)).toThrow(/32 bytes, got 16/);
  });
});
