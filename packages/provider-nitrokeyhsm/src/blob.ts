import type { Mapping } from "@psi/core";
import { errorMessage, isPsiError, PsiError } from "@psi/core";
import {
  isEnvelopeError,
  type OaepHash,
  openHybrid,
  pythonJsonDumps,
  sealHybrid,
  type Unwrap,
} from "@psi/envelope";

/** The provider name in mappings and configuration. */
export const NITROKEYHSM_PROVIDER = "nitrokeyhsm";

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const STORE_AGAIN = "re-create the secret with `psi nitrokeyhsm store NAME`";

/** A nitrokeyhsm mapping: what Podman stores and the provider reads back (SPEC §3). */
export type NitrokeyHsmMapping = {
  provider: typeof NITROKEYHSM_PROVIDER;
  /** base64 of the hybrid blob (SPEC §6.4). */
  blob: string;
};

/**
 * Seals `plaintext` for the HSM's public key (SPEC §6.4; only the public key is needed)
 * and returns the mapping and its bytes `{"provider": "nitrokeyhsm", "blob": "..."}` in
 * Python `json.dumps` form, like every mapping PSI writes.
 */
export function sealNitrokeyHsmMapping(
  plaintext: Uint8Array,
  publicKeyDer: Uint8Array,
  hash: OaepHash = "sha256",
): { mapping: NitrokeyHsmMapping; bytes: Uint8Array } {
  const blob = Buffer.from(sealHybrid(plaintext, publicKeyDer, hash)).toString("base64");
  const mapping: NitrokeyHsmMapping = { provider: NITROKEYHSM_PROVIDER, blob };
  return { mapping, bytes: Buffer.from(pythonJsonDumps(mapping), "utf8") };
}

/** The mapping's blob as bytes; `nitrokeyhsm.corrupt_blob` when it is missing or not base64. */
export function decodeNitrokeyHsmBlob(mapping: Mapping): Uint8Array {
  const blob = mapping["blob"];
  if (typeof blob !== "string") {
    throw new PsiError(
      "nitrokeyhsm.corrupt_blob",
      'nitrokeyhsm provider: the mapping has no string "blob" field',
      { hint: STORE_AGAIN },
    );
  }
  // Python's b64decode (the reference) tolerates line breaks; anything else is damage.
  const compact = blob.replace(/\s+/g, "");
  if (compact.length === 0 || !BASE64.test(compact)) {
    throw new PsiError(
      "nitrokeyhsm.corrupt_blob",
      "nitrokeyhsm provider: the mapping's blob is not base64",
      { hint: STORE_AGAIN },
    );
  }
  return Buffer.from(compact, "base64");
}

/**
 * Opens a nitrokeyhsm mapping: decodes the blob, unwraps its AES key with `unwrap` (on
 * the token) and decrypts. Errors name the provider and never contain the value:
 * `nitrokeyhsm.corrupt_blob` (not base64, truncated, tampered), `nitrokeyhsm.unwrap_failed`
 * (the token refused: another key, another oaep_hash, token gone).
 */
export async function openNitrokeyHsmMapping(
  mapping: Mapping,
  unwrap: Unwrap,
): Promise<Uint8Array> {
  const bytes = decodeNitrokeyHsmBlob(mapping);
  // Failures of the unwrap itself (the token) are told apart from a damaged blob.
  let unwrapError: { error: unknown } | undefined;
  const guarded: Unwrap = async (wrapped) => {
    try {
      return await unwrap(wrapped);
    } catch (error) {
      unwrapError = { error };
      throw error;
    }
  };
  try {
    return await openHybrid(bytes, guarded);
  } catch (error) {
    if (unwrapError !== undefined) {
      const cause = unwrapError.error;
      throw new PsiError(
        "nitrokeyhsm.unwrap_failed",
        `nitrokeyhsm provider: cannot unwrap the secret's key on the HSM: ${errorMessage(cause)}`,
        {
          cause,
          hint:
            isPsiError(cause) && cause.hint !== undefined
              ? cause.hint
              : "the secret was stored for another key or with another oaep_hash, or the token is unavailable",
        },
      );
    }
    if (isEnvelopeError(error)) {
      const tampered = error.code === "auth_failed";
      throw new PsiError(
        "nitrokeyhsm.corrupt_blob",
        `nitrokeyhsm provider: the secret's blob is ${tampered ? "damaged (AES-GCM authentication failed)" : `malformed (${error.message})`}`,
        { cause: error, hint: STORE_AGAIN },
      );
    }
    throw new PsiError(
      "nitrokeyhsm.decrypt_failed",
      `nitrokeyhsm provider: cannot decrypt the secret: ${errorMessage(error)}`,
      { cause: error, hint: STORE_AGAIN },
    );
  }
}
