import { defineCacheBackend, PsiError } from "@psi/core";
import { type CacheCipher, hybridBackend, TAG_HSM } from "@psi/envelope";
import { type NitrokeyHsm, openNitrokeyHsm } from "./nitrokeyhsm.js";

/**
 * The hsm cache backend (SPEC §7, tag 0x02): the payload is a hybrid blob (§6.4) whose AES
 * key is wrapped with the HSM's RSA key. `open()` resolves the PIN, logs in, exports and
 * verifies the public key (pin, public key cache); `encrypt` needs only the public key,
 * `decrypt` unwraps on the token. Settings come from `providers.nitrokeyhsm`.
 */
export const hsmCacheBackend = defineCacheBackend((context) => {
  let hsm: NitrokeyHsm | undefined;
  let cipher: CacheCipher | undefined;
  const config = context.config.providers.nitrokeyhsm;

  const opened = (): CacheCipher => {
    if (cipher) return cipher;
    throw new PsiError("cache.backend_not_open", "the hsm cache backend is used before open()", {
      hint: "call open() first (this is a bug in the caller)",
    });
  };

  return {
    name: "hsm",
    tag: TAG_HSM,
    async open() {
      if (hsm) return;
      hsm = await openNitrokeyHsm({
        config,
        stateDir: context.paths.stateDir,
        env: context.env,
        logger: context.logger,
      });
      const session = hsm;
      cipher = hybridBackend({
        publicKeyDer: session.publicKeyDer,
        unwrap: (wrapped) => session.unwrap(wrapped),
        hash: session.info.oaepHash,
        tag: TAG_HSM,
      });
      if (!hsm.pinned) {
        context.logger.warn(
          "the HSM public key is not pinned: a swapped token would go unnoticed; run `psi nitrokeyhsm init` to pin it",
          { event: "hsm.unpinned", fingerprint: hsm.fingerprint },
        );
      }
    },
    async encrypt(plaintext) {
      return opened().encrypt(plaintext);
    },
    async decrypt(payload) {
      return opened().decrypt(payload);
    },
    async close() {
      cipher = undefined;
      hsm?.close();
      hsm = undefined;
    },
  };
});
