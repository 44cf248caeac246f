import { type NitrokeyHsm, openNitrokeyHsm } from "@psi/cache-hsm";
import type { Env, Logger, Mapping, NitrokeyHsmConfig, Provider } from "@psi/core";
import { defineProvider, PsiError } from "@psi/core";
import { NITROKEYHSM_PROVIDER, openNitrokeyHsmMapping } from "./blob.js";

/** Options of {@link createNitrokeyHsmProvider}. */
export interface NitrokeyHsmProviderOptions {
  /** `providers.nitrokeyhsm`; absent → the defaults of SPEC §2. */
  config?: NitrokeyHsmConfig | undefined;
  stateDir: string;
  env: Env;
  logger?: Logger;
}

/**
 * The nitrokeyhsm provider over explicit settings. `open()` resolves the PIN, logs in,
 * finds the key and refuses a key that is not the pinned one (or not the public key
 * cache); `lookup` unwraps each blob's AES key on the token.
 */
export function createNitrokeyHsmProvider(options: NitrokeyHsmProviderOptions): Provider {
  let hsm: NitrokeyHsm | undefined;
  return {
    name: NITROKEYHSM_PROVIDER,
    async open() {
      if (hsm) return;
      hsm = await openNitrokeyHsm({
        config: options.config,
        stateDir: options.stateDir,
        env: options.env,
        ...(options.logger === undefined ? {} : { logger: options.logger }),
      });
      options.logger?.info(
        `nitrokeyhsm provider: token "${hsm.info.tokenLabel}", key ${hsm.info.keyLabel || hsm.info.keyId} (sha256:${hsm.fingerprint})`,
        {
          event: "provider.opened",
          provider: NITROKEYHSM_PROVIDER,
          fingerprint: hsm.fingerprint,
          pin_source: hsm.pinSource,
        },
      );
      if (!hsm.pinned) {
        options.logger?.warn(
          "the HSM public key is not pinned: a swapped token would go unnoticed; run `psi nitrokeyhsm init` to pin it",
          { event: "hsm.unpinned", provider: NITROKEYHSM_PROVIDER, fingerprint: hsm.fingerprint },
        );
      }
    },
    async close() {
      hsm?.close();
      hsm = undefined;
    },
    async lookup(mapping: Mapping): Promise<Uint8Array> {
      const opened = hsm;
      if (!opened) {
        throw new PsiError("nitrokeyhsm.not_open", "nitrokeyhsm provider used before open()", {
          hint: "call open() first (this is a bug in the caller)",
        });
      }
      return openNitrokeyHsmMapping(mapping, (wrapped) => opened.unwrap(wrapped));
    },
  };
}

/**
 * `providers.nitrokeyhsm` (SPEC §8.2): secrets stored as hybrid blobs
 * (`{"provider":"nitrokeyhsm","blob":...}`) whose AES keys only the HSM can unwrap.
 */
export const nitrokeyhsmProvider = defineProvider((context) =>
  createNitrokeyHsmProvider({
    config: context.config.providers?.nitrokeyhsm,
    stateDir: context.paths.stateDir,
    env: context.env,
    logger: context.logger,
  }),
);
