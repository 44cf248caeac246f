import {
  constants,
  createPrivateKey,
  createPublicKey,
  type KeyObject,
  randomBytes as nodeRandomBytes,
  privateDecrypt,
  publicEncrypt,
} from "node:crypto";
import { AES_KEY_LENGTH, GCM_TAG_LENGTH, NONCE_LENGTH, openAesGcm, sealAesGcm } from "./aes-gcm.js";
import type { CacheCipher, RandomOptions } from "./cipher.js";
import { EnvelopeError } from "./errors.js";
import { TAG_HSM } from "./header.js";

/** The OAEP (and MGF1) digest: SHA-256 by default, SHA-1 for tokens that only do that. */
export type OaepHash = "sha256" | "sha1";

/** Turns the RSA-OAEP-wrapped AES key back into the key (on an HSM, or in software). */
export type Unwrap = (wrapped: Uint8Array) => Promise<Uint8Array> | Uint8Array;

/** Options of {@link hybridBackend}. */
export interface HybridBackendOptions extends RandomOptions {
  publicKeyDer: Uint8Array;
  unwrap: Unwrap;
  /** Header tag; the hsm backend's 0x02 unless given. */
  tag?: number;
  /** OAEP digest used when sealing; unwrap decides it when opening. */
  hash?: OaepHash;
}

const KEY_LENGTH_FIELD = 2;

function importPublicKey(publicKeyDer: Uint8Array): KeyObject {
  const der = Buffer.from(publicKeyDer);
  for (const type of ["spki", "pkcs1"] as const) {
    try {
      const key = createPublicKey({ key: der, format: "der", type });
      if (key.asymmetricKeyType === "rsa") return key;
    } catch {
      // try the next encoding
    }
  }
  throw new TypeError(
    "publicKeyDer is not an RSA public key in DER (SubjectPublicKeyInfo or PKCS#1)",
  );
}

function seal(
  plaintext: Uint8Array,
  publicKey: KeyObject,
  hash: OaepHash,
  options: RandomOptions,
): Uint8Array {
  const random = options.randomBytes ?? nodeRandomBytes;
  const aesKey = Buffer.from(random(AES_KEY_LENGTH));
  if (aesKey.length !== AES_KEY_LENGTH) {
    throw new RangeError(
      `random source returned ${aesKey.length} bytes for a ${AES_KEY_LENGTH}-byte key`,
    );
  }
  try {
    const wrapped = publicEncrypt(
      { key: publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: hash },
      aesKey,
    );
    if (wrapped.length > 0xffff) throw new RangeError("RSA key too large for a hybrid blob");
    const length = Buffer.allocUnsafe(KEY_LENGTH_FIELD);
    length.writeUInt16BE(wrapped.length, 0);
    return Buffer.concat([length, wrapped, sealAesGcm(aesKey, plaintext, { randomBytes: random })]);
  } finally {
    aesKey.fill(0);
  }
}

/**
 * Seals `plaintext` as `key_len(u16 BE) || RSA-OAEP(aes_key) || nonce(12) || ct || tag(16)`
 * (SPEC §6.4) with a fresh AES-256 key; needs only the public key (SPKI or PKCS#1 DER).
 */
export function sealHybrid(
  plaintext: Uint8Array,
  publicKeyDer: Uint8Array,
  hash: OaepHash = "sha256",
  options: RandomOptions = {},
): Uint8Array {
  return seal(plaintext, importPublicKey(publicKeyDer), hash, options);
}

/** Opens a hybrid blob; `unwrap` recovers the AES key. Throws EnvelopeError on bad blobs. */
export async function openHybrid(blob: Uint8Array, unwrap: Unwrap): Promise<Uint8Array> {
  if (blob.length < KEY_LENGTH_FIELD) {
    throw new EnvelopeError(
      "truncated",
      `hybrid blob truncated (${blob.length} bytes, need at least ${KEY_LENGTH_FIELD} for the key length)`,
    );
  }
  const keyLength = ((blob[0] as number) << 8) | (blob[1] as number);
  const minimum = KEY_LENGTH_FIELD + keyLength + NONCE_LENGTH + GCM_TAG_LENGTH;
  if (blob.length < minimum) {
    throw new EnvelopeError(
      "truncated",
      `hybrid blob truncated (${blob.length} bytes, need at least ${minimum} for a ${keyLength}-byte wrapped key, nonce and tag)`,
    );
  }
  const wrapped = Buffer.from(blob.subarray(KEY_LENGTH_FIELD, KEY_LENGTH_FIELD + keyLength));
  const aesKey = Buffer.from(await unwrap(wrapped));
  try {
    if (aesKey.length !== AES_KEY_LENGTH) {
      throw new EnvelopeError(
        "bad_payload",
        `hybrid blob's wrapped key unwrapped to ${aesKey.length} bytes, not a ${AES_KEY_LENGTH}-byte AES key`,
      );
    }
    return openAesGcm(aesKey, blob.subarray(KEY_LENGTH_FIELD + keyLength));
  } finally {
    aesKey.fill(0);
  }
}

/**
 * An unwrap function for a private key held in software (PEM, PKCS#8 or PKCS#1): RSA-OAEP
 * with `hash` for both OAEP and MGF1, empty label. Wrong key or tampering: auth_failed.
 */
export function softwareUnwrap(
  privateKeyPem: string,
  hash: OaepHash = "sha256",
): (wrapped: Uint8Array) => Uint8Array {
  const key = createPrivateKey(privateKeyPem);
  if (key.asymmetricKeyType !== "rsa") {
    throw new TypeError(`private key is ${key.asymmetricKeyType ?? "unknown"}, not RSA`);
  }
  return (wrapped) => {
    try {
      return privateDecrypt(
        { key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: hash },
        wrapped,
      );
    } catch (error) {
      throw new EnvelopeError(
        "auth_failed",
        `could not unwrap the AES key (RSA-OAEP-${hash.toUpperCase()}): wrong private key, wrong OAEP hash, or tampered data`,
        {
          cause: error,
          hint: "check that the blob was sealed to this key with the configured oaep hash",
        },
      );
    }
  };
}

/**
 * A cipher whose payload is a hybrid blob (the hsm backend, tag 0x02): saving needs only
 * the public key, loading calls `unwrap` (the token) once per file.
 */
export function hybridBackend(opts: HybridBackendOptions): CacheCipher {
  const publicKey = importPublicKey(opts.publicKeyDer);
  const hash = opts.hash ?? "sha256";
  const random = opts.randomBytes === undefined ? {} : { randomBytes: opts.randomBytes };
  return {
    tag: opts.tag ?? TAG_HSM,
    encrypt: (plaintext) => seal(plaintext, publicKey, hash, random),
    decrypt: (payload) => openHybrid(payload, opts.unwrap),
  };
}
