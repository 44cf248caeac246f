import { aesGcmBackend, type CacheCipher, type RandomBytes } from "@psi/envelope";
import type { CacheBackend } from "./contracts.js";
import { PsiError } from "./errors.js";

/** Options of {@link aesKeyBackend}. */
export interface AesKeyBackendOptions {
  name: CacheBackend["name"];
  tag: number;
  /** Supplies the 32-byte key on `open()` (from a file, a systemd credential, ...). */
  loadKey: () => Promise<Uint8Array>;
  /** Nonce source; injectable so tests can pin the bytes written. */
  randomBytes?: RandomBytes | undefined;
}

/**
 * A cache backend whose payload is AES-256-GCM under a 32-byte key (tpm, keyfile): the
 * backends differ only in where the key comes from. The key is zeroed on `close()`.
 */
export function aesKeyBackend(options: AesKeyBackendOptions): CacheBackend {
  const { name, tag, loadKey, randomBytes } = options;
  let key: Uint8Array | undefined;
  let cipher: CacheCipher | undefined;
  const opened = (): CacheCipher => {
    if (cipher) return cipher;
    throw new PsiError("cache.not_open", `${name} cache backend used before open()`, {
      hint: "call open() first",
    });
  };
  return {
    name,
    tag,
    async open() {
      if (cipher) return;
      key = await loadKey();
      cipher = aesGcmBackend(key, tag, randomBytes === undefined ? {} : { randomBytes });
    },
    async encrypt(plaintext) {
      return opened().encrypt(plaintext);
    },
    async decrypt(payload) {
      return opened().decrypt(payload);
    },
    async reloadKey() {
      const fresh = await loadKey();
      if (key !== undefined && Buffer.compare(fresh, key) === 0) {
        fresh.fill(0);
        return false;
      }
      key?.fill(0);
      key = fresh;
      cipher = aesGcmBackend(key, tag, randomBytes === undefined ? {} : { randomBytes });
      return true;
    },
    async close() {
      key?.fill(0);
      key = undefined;
      cipher = undefined;
    },
  };
}
