import { createCipheriv, createDecipheriv, randomBytes as nodeRandomBytes } from "node:crypto";
import type { CacheCipher, RandomOptions } from "./cipher.js";
import { EnvelopeError } from "./errors.js";

/** AES-256 key length in bytes. */
export const AES_KEY_LENGTH = 32;
/** AES-GCM nonce length in bytes. */
export const NONCE_LENGTH = 12;
/** AES-GCM authentication tag length in bytes. */
export const GCM_TAG_LENGTH = 16;

function checkKey(key: Uint8Array): void {
  if (key.length !== AES_KEY_LENGTH) {
    throw new RangeError(`AES-256-GCM key must be ${AES_KEY_LENGTH} bytes, got ${key.length}`);
  }
}

/** Encrypts to `nonce(12) || ciphertext || tag(16)` with a fresh (or injected) nonce. */
export function sealAesGcm(
  key: Uint8Array,
  plaintext: Uint8Array,
  options: RandomOptions = {},
): Uint8Array {
  checkKey(key);
  const nonce = (options.randomBytes ?? nodeRandomBytes)(NONCE_LENGTH);
  if (nonce.length !== NONCE_LENGTH) {
    throw new RangeError(
      `random source returned ${nonce.length} bytes for a ${NONCE_LENGTH}-byte nonce`,
    );
  }
  const cipher = createCipheriv("aes-256-gcm", key, nonce, { authTagLength: GCM_TAG_LENGTH });
  const body = cipher.update(plaintext);
  const last = cipher.final();
  return Buffer.concat([nonce, body, last, cipher.getAuthTag()]);
}

/** Decrypts `nonce(12) || ciphertext || tag(16)`; throws EnvelopeError truncated / auth_failed. */
export function openAesGcm(key: Uint8Array, payload: Uint8Array): Uint8Array {
  checkKey(key);
  const minimum = NONCE_LENGTH + GCM_TAG_LENGTH;
  if (payload.length < minimum) {
    throw new EnvelopeError(
      "truncated",
      `payload truncated (${payload.length} bytes, need at least ${minimum} for nonce and tag)`,
      { hint: "the file was cut off; re-run `psi setup` to rewrite it" },
    );
  }
  const nonce = payload.subarray(0, NONCE_LENGTH);
  const tag = payload.subarray(payload.length - GCM_TAG_LENGTH);
  const body = payload.subarray(NONCE_LENGTH, payload.length - GCM_TAG_LENGTH);
  const decipher = createDecipheriv("aes-256-gcm", key, nonce, { authTagLength: GCM_TAG_LENGTH });
  decipher.setAuthTag(tag);
  const head = decipher.update(body);
  try {
    return Buffer.concat([head, decipher.final()]);
  } catch (error) {
    head.fill(0);
    throw new EnvelopeError(
      "auth_failed",
      "authentication failed: the data was tampered with or the key is wrong",
      {
        cause: error,
        hint: "if the cache key was re-provisioned, re-run `psi setup` to rewrite the cache",
      },
    );
  }
}

/**
 * A cipher for key-in-hand backends (tpm 0x01, keyfile 0x03): payload is
 * `nonce(12) || AES-256-GCM ciphertext || tag(16)` under the 32-byte `key`.
 */
export function aesGcmBackend(
  key: Uint8Array,
  tag: number,
  options: RandomOptions = {},
): CacheCipher {
  checkKey(key);
  const own = Buffer.from(key);
  return {
    tag,
    encrypt: (plaintext) => sealAesGcm(own, plaintext, options),
    decrypt: (payload) => openAesGcm(own, payload),
  };
}
