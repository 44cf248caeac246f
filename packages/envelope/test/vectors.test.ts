import { describe, expect, it } from "vitest";
import {
  aesGcmBackend,
  cacheKey,
  canonicalMapping,
  decodeCacheFile,
  type EnvelopeErrorCode,
  encodeCacheFile,
  hybridBackend,
  openHybrid,
  readHeader,
  softwareUnwrap,
  TAG_HSM,
  TAG_TPM,
} from "../src/index.js";
import { manifest, vector } from "./vectors.js";

const m = manifest();
const tpmKey = Buffer.from(m.tpm_key_hex, "hex");
const privateKeyPem = vector("hsm-private-key.pem").toString("utf8");

function expectEntries(entries: Map<string, Uint8Array>): void {
  expect([...entries.keys()].sort()).toEqual(m.entries.map((e) => e.cache_key).sort());
  for (const entry of m.entries) {
    expect(Buffer.from(entries.get(entry.cache_key) as Uint8Array).toString("base64")).toBe(
      entry.value_b64,
    );
  }
}

describe("shared vectors (SPEC §6.7)", () => {
  it("every file in manifest.json is covered by a test below", () => {
    expect(Object.keys(m.files).sort()).toEqual(
      [
        "bad-magic.enc",
        "hsm-cache.enc",
        "legacy-v1-cache.enc",
        "nitrokeyhsm-mapping.json",
        "tampered.enc",
        "tpm-cache.enc",
        "truncated-header.enc",
        "truncated-payload.enc",
        "unknown-version.enc",
      ].sort(),
    );
  });

  it("manifest mappings have the listed canonical bytes and cache keys", () => {
    const hmacKey = Buffer.from(m.hmac_key_b64, "base64");
    for (const entry of m.entries) {
      expect(Buffer.from(canonicalMapping(entry.mapping)).toString("base64")).toBe(
        entry.canonical_b64,
      );
      expect(cacheKey(hmacKey, entry.mapping)).toBe(entry.cache_key);
    }
  });

  it("tpm-cache.enc decrypts with tpm_key_hex to the listed entries", async () => {
    const file = vector("tpm-cache.enc");
    expect(readHeader(file)).toEqual({ version: 1, tag: TAG_TPM });
    const cache = await decodeCacheFile(file, aesGcmBackend(tpmKey, TAG_TPM));
    expect(cache.legacy).toBe(false);
    expect(cache.writtenAt).toBe(m.written_at);
    expect(Buffer.from(cache.hmacKey).toString("base64")).toBe(m.hmac_key_b64);
    expectEntries(cache.entries);
    for (const entry of m.entries)
      expect(cacheKey(cache.hmacKey, entry.mapping)).toBe(entry.cache_key);
  });

  it("re-encoding tpm-cache.enc's contents with its nonce reproduces the file byte for byte", async () => {
    const file = vector("tpm-cache.enc");
    const cache = await decodeCacheFile(file, aesGcmBackend(tpmKey, TAG_TPM));
    const nonce = file.subarray(6, 18);
    const cipher = aesGcmBackend(tpmKey, TAG_TPM, { randomBytes: () => Buffer.from(nonce) });
    const again = await encodeCacheFile(cache, cipher);
    expect(Buffer.from(again).equals(file)).toBe(true);
  });

  it("hsm-cache.enc decrypts with softwareUnwrap(hsm-private-key.pem), OAEP SHA-256", async () => {
    const file = vector("hsm-cache.enc");
    expect(readHeader(file).tag).toBe(TAG_HSM);
    const cipher = hybridBackend({
      publicKeyDer: vector("hsm-public-key.der"),
      unwrap: softwareUnwrap(privateKeyPem),
    });
    const cache = await decodeCacheFile(file, cipher);
    expect(cache.legacy).toBe(false);
    expect(Buffer.from(cache.hmacKey).toString("base64")).toBe(m.hmac_key_b64);
    expectEntries(cache.entries);
  });

  it("hsm-cache.enc does not open with the SHA-1 unwrap (auth_failed)", async () => {
    const cipher = hybridBackend({
      publicKeyDer: vector("hsm-public-key.der"),
      unwrap: softwareUnwrap(privateKeyPem, "sha1"),
    });
    await expect(decodeCacheFile(vector("hsm-cache.enc"), cipher)).rejects.toMatchObject({
      code: "auth_failed",
    });
  });

  it("nitrokeyhsm-mapping.json's blob opens to nitrokeyhsm_plaintext_b64", async () => {
    const mapping = JSON.parse(vector("nitrokeyhsm-mapping.json").toString("utf8")) as {
      provider: string;
      blob: string;
    };
    expect(mapping.provider).toBe("nitrokeyhsm");
    const plaintext = await openHybrid(
      Buffer.from(mapping.blob, "base64"),
      softwareUnwrap(privateKeyPem),
    );
    expect(Buffer.from(plaintext).toString("base64")).toBe(m.nitrokeyhsm_plaintext_b64);
  });

  it("legacy-v1-cache.enc loads as an empty cache with a new random HMAC key", async () => {
    const cipher = aesGcmBackend(tpmKey, TAG_TPM);
    const first = await decodeCacheFile(vector("legacy-v1-cache.enc"), cipher);
    const second = await decodeCacheFile(vector("legacy-v1-cache.enc"), cipher);
    expect(first.legacy).toBe(true);
    expect(first.entries.size).toBe(0);
    expect(first.hmacKey.length).toBe(32);
    expect(Buffer.from(first.hmacKey).equals(Buffer.from(second.hmacKey))).toBe(false);
  });

  const failures: Array<[string, EnvelopeErrorCode, RegExp]> = [
    ["bad-magic.enc", "bad_magic", /not a PSI cache file/],
    ["truncated-header.enc", "too_short", /too short for a PSIC header \(5 bytes/],
    ["unknown-version.enc", "unsupported_version", /envelope version 0x07/],
    ["tampered.enc", "auth_failed", /authentication failed/],
    ["truncated-payload.enc", "truncated", /payload truncated \(20 bytes/],
  ];
  for (const [name, code, message] of failures) {
    it(`${name} fails with ${code}, naming the file`, async () => {
      const path = `/var/lib/psi/${name}`;
      const error = await decodeCacheFile(vector(name), aesGcmBackend(tpmKey, TAG_TPM), {
        path,
      }).catch((e: unknown) => e);
      expect(error).toMatchObject({ name: "EnvelopeError", code, path });
      expect((error as Error).message).toMatch(message);
      expect((error as Error).message).toContain(path);
    });
  }
});
