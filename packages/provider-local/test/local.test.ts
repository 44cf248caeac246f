import { generateKeyPairSync, randomBytes } from "node:crypto";
import type { CacheBackend, PsiError } from "@psi/core";
import { isPsiError, parseMapping } from "@psi/core";
import { aesGcmBackend, type CacheCipher, hybridBackend, softwareUnwrap } from "@psi/envelope";
import {
  createLocalProvider,
  localProvider,
  openLocalBlob,
  sealLocal,
  sealLocalBlob,
} from "@psi/provider-local";
import { describe, expect, it } from "vitest";

// Backends built from @psi/envelope's real ciphers: the same AES-GCM the keyfile and tpm
// backends use, and the hybrid RSA-OAEP scheme of the hsm backend with a software key.
function backendOf(name: CacheBackend["name"], cipher: CacheCipher): CacheBackend {
  return {
    name,
    tag: cipher.tag,
    open: async () => {},
    encrypt: async (plaintext) => cipher.encrypt(plaintext),
    decrypt: async (payload) => cipher.decrypt(payload),
    close: async () => {},
  };
}
const keyfile = (key = randomBytes(32)) => backendOf("keyfile", aesGcmBackend(key, 0x03));
const tpm = (key = randomBytes(32)) => backendOf("tpm", aesGcmBackend(key, 0x01));
function hsm(): CacheBackend {
  const { publicKey, privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const publicKeyDer = publicKey.export({ type: "spki", format: "der" });
  const unwrap = softwareUnwrap(privateKey.export({ type: "pkcs8", format: "pem" }).toString());
  return backendOf("hsm", hybridBackend({ publicKeyDer, unwrap }));
}

const value = Buffer.from("s3cr3t-value\n\u0000\u00ff", "latin1");

function provider(backend: CacheBackend | undefined) {
  return createLocalProvider({ openCacheBackend: async () => backend });
}

describe("sealLocal", () => {
  it("writes a local mapping in Python json.dumps form that the provider opens again", async () => {
    const backend = keyfile();
    const bytes = await sealLocal(backend, value);
    const text = Buffer.from(bytes).toString("utf8");
    expect(text).toMatch(/^\{"provider": "local", "blob": "[A-Za-z0-9+/=]+"\}$/);
    expect(text).not.toContain("s3cr3t");
    const local = provider(backend);
    await local.open();
    expect(Buffer.from(await local.lookup(parseMapping(bytes)))).toEqual(value);
  });

  it("starts the blob with the backend's tag byte and seals freshly each time", async () => {
    const backend = keyfile();
    const a = Buffer.from(await sealLocalBlob(backend, value), "base64");
    const b = Buffer.from(await sealLocalBlob(backend, value), "base64");
    expect(a[0]).toBe(0x03);
    expect(a.equals(b)).toBe(false);
  });

  for (const [name, make] of [
    ["tpm", tpm],
    ["hsm", hsm],
  ] as const) {
    it(`round-trips under the ${name} backend`, async () => {
      const backend = make();
      const blob = await sealLocalBlob(backend, value);
      expect(Buffer.from(blob, "base64")[0]).toBe(backend.tag);
      expect(Buffer.from(await openLocalBlob(backend, blob))).toEqual(value);
    });
  }

  it("round-trips an empty and a large value", async () => {
    const backend = keyfile();
    const large = randomBytes(300_000);
    expect(Buffer.from(await openLocalBlob(backend, await sealLocalBlob(backend, large)))).toEqual(
      large,
    );
    expect(
      (await openLocalBlob(backend, await sealLocalBlob(backend, new Uint8Array()))).byteLength,
    ).toBe(0);
  });
});

describe("local provider lookup errors", () => {
  it("names both backends when a blob was sealed under another one", async () => {
    const blob = await sealLocalBlob(tpm(), value);
    const error = await openLocalBlob(keyfile(), blob).catch((e: unknown) => e);
    expect(isPsiError(error, "local.wrong_backend")).toBe(true);
    expect((error as PsiError).message).toContain("sealed with the tpm backend (0x01)");
    expect((error as PsiError).message).toContain(
      "configured cache backend is the keyfile backend (0x03)",
    );
  });

  it("reports a different key of the same backend as a decryption failure", async () => {
    const blob = await sealLocalBlob(keyfile(), value);
    const error = await openLocalBlob(keyfile(), blob).catch((e: unknown) => e);
    expect(isPsiError(error, "local.decrypt_failed")).toBe(true);
    expect((error as PsiError).hint).toContain("psi local store");
  });

  it("reports a tampered blob as a decryption failure", async () => {
    const backend = keyfile();
    const bytes = Buffer.from(await sealLocalBlob(backend, value), "base64");
    bytes[bytes.length - 1]! ^= 1;
    const error = await openLocalBlob(backend, bytes.toString("base64")).catch((e: unknown) => e);
    expect(isPsiError(error, "local.decrypt_failed")).toBe(true);
  });

  it("rejects a blob that is not base64, or missing", async () => {
    const local = provider(keyfile());
    await local.open();
    for (const mapping of [
      { provider: "local", blob: "not base64!" },
      { provider: "local", blob: "" },
      { provider: "local" },
      { provider: "local", blob: 42 },
    ]) {
      const error = await local.lookup(mapping).catch((e: unknown) => e);
      expect(isPsiError(error, "local.bad_blob")).toBe(true);
    }
  });

  it("fails to open without a configured backend, saying how to configure one", async () => {
    const error = await provider(undefined)
      .open()
      .catch((e: unknown) => e);
    expect(isPsiError(error, "local.no_backend")).toBe(true);
    expect((error as PsiError).hint).toContain("cache.backend");
  });

  it("takes the backend from the context's openCacheBackend", async () => {
    const backend = keyfile();
    const bytes = await sealLocal(backend, value);
    const context = { openCacheBackend: async () => backend } as unknown as Parameters<
      typeof localProvider
    >[0];
    const local = localProvider(context);
    expect(local.name).toBe("local");
    await local.open();
    expect(Buffer.from(await local.lookup(parseMapping(bytes)))).toEqual(value);
    await local.close();
  });
});
