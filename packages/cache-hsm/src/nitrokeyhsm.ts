import {
  type Env,
  errorMessage,
  type Logger,
  type NitrokeyHsmConfig,
  NitrokeyHsmSchema,
  PsiError,
} from "@psi/core";
import { resolveHsmPin } from "./pin.js";
import {
  publicKeyCachePath,
  publicKeyFingerprint,
  readPublicKeyCache,
  verifyPublicKeyPin,
  writePublicKeyCache,
} from "./public-key.js";
import { type HsmSession, type HsmSessionInfo, openHsmSession } from "./session.js";

/** Options of {@link openNitrokeyHsm}. */
export interface OpenNitrokeyHsmOptions {
  /** `providers.nitrokeyhsm`; absent → the defaults of SPEC §2. */
  config?: NitrokeyHsmConfig | undefined;
  stateDir: string;
  env: Env;
  logger?: Logger;
  /**
   * Trust whatever key the token holds: skip the pin and public key cache checks and
   * rewrite the cache from the token. Only for deliberate (re-)pinning
   * (`psi nitrokeyhsm init --force`), which then calls {@link pinPublicKey}.
   */
  trustToken?: boolean;
}

/** An opened, verified HSM: the session plus what was checked. */
export interface NitrokeyHsm {
  readonly info: HsmSessionInfo;
  readonly session: HsmSession;
  /** The token's public key (SPKI DER), equal to the pinned one and to the cache file. */
  readonly publicKeyDer: Uint8Array;
  /** SHA-256 of `publicKeyDer`, hex. */
  readonly fingerprint: string;
  /** False when no pin is recorded yet: the caller should warn (run `psi nitrokeyhsm init`). */
  readonly pinned: boolean;
  readonly publicKeyCachePath: string;
  /** Where the PIN came from (never the PIN). */
  readonly pinSource: string;
  unwrap(wrapped: Uint8Array): Uint8Array;
  close(): void;
}

/** `providers.nitrokeyhsm` with every default filled in (SPEC §2). */
export function nitrokeyHsmDefaults(): NitrokeyHsmConfig {
  // Standard Schema's validate() is valibot's own parse, without a second copy of the defaults.
  const result = NitrokeyHsmSchema["~standard"].validate({});
  if (result instanceof Promise || result.issues)
    throw new Error("the nitrokeyhsm schema has no defaults");
  return result.value;
}

/**
 * Opens the configured HSM the way the hsm cache backend and the nitrokeyhsm provider
 * need it (SPEC §7 hsm, §8.2): resolves the PIN, opens and logs in, exports the public
 * key, refuses a key that differs from the pinned one (`hsm.key_mismatch`) or from the
 * public key cache file (`hsm.public_key_cache_mismatch`), and writes the cache when it
 * is missing.
 */
export async function openNitrokeyHsm(options: OpenNitrokeyHsmOptions): Promise<NitrokeyHsm> {
  const config = options.config ?? nitrokeyHsmDefaults();
  const { pin, source: pinSource } = await resolveHsmPin({
    env: options.env,
    configPin: config.pin,
  });
  const session = openHsmSession({
    modulePath: config.pkcs11_module,
    initParams: config.init_params,
    slot: config.slot,
    pin,
    pinSource,
    keyId: config.key_id,
    keyLabel: config.key_label,
    oaepHash: config.oaep_hash,
  });
  try {
    const der = session.publicKeyDer();
    const fingerprint = publicKeyFingerprint(der);
    const cachePath = publicKeyCachePath(config.public_key_cache, options.stateDir);
    let pinned = false;
    if (options.trustToken) {
      await writePublicKeyCache(cachePath, der);
    } else {
      pinned = (await verifyPublicKeyPin(options.stateDir, der)).pinned;
      const cached = await readPublicKeyCache(cachePath);
      if (cached === null) {
        try {
          await writePublicKeyCache(cachePath, der);
        } catch (error) {
          // the cache only spares later exports; the session works without it
          options.logger?.warn(
            `cannot write the HSM public key cache ${cachePath}: ${errorMessage(error)}`,
            {
              event: "hsm.public_key_cache",
              path: cachePath,
            },
          );
        }
      } else if (publicKeyFingerprint(cached) !== fingerprint) {
        throw new PsiError(
          "hsm.public_key_cache_mismatch",
          `refusing to use the HSM: the public key cache ${cachePath} (sha256:${publicKeyFingerprint(cached)}) is not the key on the token (sha256:${fingerprint})`,
          {
            hint: "someone may have substituted the file; if the token was replaced on purpose, delete the file and re-pin with `psi nitrokeyhsm init --force`",
          },
        );
      }
    }
    return {
      info: session.info,
      session,
      publicKeyDer: der,
      fingerprint,
      pinned,
      publicKeyCachePath: cachePath,
      pinSource,
      unwrap: (wrapped) => session.unwrap(wrapped),
      close: () => session.close(),
    };
  } catch (error) {
    session.close();
    throw error;
  }
}
