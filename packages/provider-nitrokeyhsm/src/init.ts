import {
  type HsmSessionInfo,
  openNitrokeyHsm,
  pinPublicKey,
  publicKeyFingerprint,
  readPublicKeyCache,
  writePublicKeyCache,
} from "@psi/cache-hsm";
import type { Env, Logger, NitrokeyHsmConfig } from "@psi/core";
import { ensureDir, isPsiError, PsiError } from "@psi/core";

/** Options of {@link initNitrokeyHsm}. */
export interface InitNitrokeyHsmOptions {
  config?: NitrokeyHsmConfig | undefined;
  stateDir: string;
  env: Env;
  logger?: Logger;
  /** Re-pin a different key (a token replaced on purpose). */
  force?: boolean;
}

/** What init found and recorded (no secrets). */
export interface InitNitrokeyHsmResult {
  info: HsmSessionInfo;
  fingerprint: string;
  /** The fingerprint pinned before, if any. */
  previous: string | null;
  /** False when this key was already pinned. */
  changed: boolean;
  publicKeyCachePath: string;
  pinPath: string;
  pinSource: string;
}

/**
 * `psi nitrokeyhsm init`: opens the token, exports its public key into the public key
 * cache and pins its SHA-256 fingerprint (SPEC §8.2). Without `force`, a key that differs
 * from the pinned one (or from the public key cache) is refused and nothing is written.
 */
export async function initNitrokeyHsm(
  options: InitNitrokeyHsmOptions,
): Promise<InitNitrokeyHsmResult> {
  await ensureDir(options.stateDir, 0o700);
  let hsm: Awaited<ReturnType<typeof openNitrokeyHsm>>;
  try {
    hsm = await openNitrokeyHsm({
      config: options.config,
      stateDir: options.stateDir,
      env: options.env,
      ...(options.logger === undefined ? {} : { logger: options.logger }),
      // --force trusts the token (and rewrites the cache); otherwise every check applies
      trustToken: options.force === true,
    });
  } catch (error) {
    if (
      isPsiError(error, "hsm.key_mismatch") ||
      isPsiError(error, "hsm.public_key_cache_mismatch")
    ) {
      throw new PsiError(
        error.code,
        `not re-pinning: ${error.message.replace(/^refusing to use the HSM: /, "")}`,
        {
          cause: error,
          hint:
            "if the HSM or its key was replaced on purpose, run `psi nitrokeyhsm init --force` " +
            "(secrets stored for the old key and an hsm cache must then be re-created); otherwise stop: the token or file may have been swapped",
        },
      );
    }
    throw error;
  }
  try {
    const pin = await pinPublicKey(options.stateDir, hsm.publicKeyDer, {
      force: options.force === true,
    });
    // openNitrokeyHsm only warns when it cannot write the cache; init must leave one
    const cached = await readPublicKeyCache(hsm.publicKeyCachePath);
    if (cached === null || publicKeyFingerprint(cached) !== hsm.fingerprint) {
      await writePublicKeyCache(hsm.publicKeyCachePath, hsm.publicKeyDer);
    }
    return {
      info: hsm.info,
      fingerprint: hsm.fingerprint,
      previous: pin.previous,
      changed: pin.changed,
      publicKeyCachePath: hsm.publicKeyCachePath,
      pinPath: pin.path,
      pinSource: hsm.pinSource,
    };
  } finally {
    hsm.close();
  }
}
