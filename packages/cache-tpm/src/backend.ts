import { constants } from "node:fs";
import { open } from "node:fs/promises";
import { join } from "node:path";
import type { CacheBackend, Env } from "@psi/core";
import { aesKeyBackend, defineCacheBackend, PsiError } from "@psi/core";
import type { RandomBytes } from "@psi/envelope";

/** The PSIC header byte of the tpm backend (SPEC §6.1). */
export const TPM_TAG = 0x01;
/** The credential name: `LoadCredentialEncrypted=psi-cache-key:...` and `systemd-creds --name=`. */
export const TPM_CREDENTIAL_NAME = "psi-cache-key";
/** Length of the AES-256 cache key the credential holds. */
export const TPM_KEY_LENGTH = 32;

/** Where the sealed key lives by default: `<config_dir>/cache.key` (SPEC §7). */
export function defaultTpmKeyPath(configDir: string): string {
  return join(configDir, "cache.key");
}

/** The unit directive that hands the decrypted key to PSI. */
export function loadCredentialDirective(configDir: string): string {
  return `LoadCredentialEncrypted=${TPM_CREDENTIAL_NAME}:${defaultTpmKeyPath(configDir)}`;
}

/** Options of {@link readTpmKey} and {@link createTpmCacheBackend}. */
export interface TpmKeyOptions {
  /** The environment; only `CREDENTIALS_DIRECTORY` is read. */
  env: Env;
  /** PSI's config dir, named in the hints (`<config_dir>/cache.key`). */
  configDir: string;
}

/**
 * Reads the 32-byte cache key systemd decrypted into `$CREDENTIALS_DIRECTORY/psi-cache-key`.
 * Each failure is a PsiError whose hint names the unit directive that fixes it.
 */
export async function readTpmKey(options: TpmKeyOptions): Promise<Uint8Array> {
  const directive = loadCredentialDirective(options.configDir);
  const sealed = defaultTpmKeyPath(options.configDir);
  const dir = options.env["CREDENTIALS_DIRECTORY"];
  if (dir === undefined || dir === "") {
    throw new PsiError(
      "cache.tpm_no_credentials",
      "tpm cache backend: CREDENTIALS_DIRECTORY is not set, so the TPM-sealed cache key is not available",
      {
        hint:
          `run psi from a unit with \`${directive}\` (\`psi systemd install\` adds it); ` +
          `for a manual run, decrypt it into a tmpfs dir first: ` +
          `\`systemd-creds decrypt --name=${TPM_CREDENTIAL_NAME} ${sealed} /run/psi-creds/${TPM_CREDENTIAL_NAME}\` ` +
          "and run with `CREDENTIALS_DIRECTORY=/run/psi-creds`",
      },
    );
  }
  const path = join(dir, TPM_CREDENTIAL_NAME);
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    // O_NONBLOCK: serve re-reads the key at run time (reloadKey); a FIFO must not stall it.
    handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") {
      throw new PsiError(
        "cache.tpm_key_missing",
        `tpm cache backend: ${path} does not exist (no credential named ${TPM_CREDENTIAL_NAME})`,
        {
          cause: error,
          hint:
            `add \`${directive}\` to the unit (the credential must be named ${TPM_CREDENTIAL_NAME}); ` +
            `if ${sealed} does not exist yet, create it with \`psi cache init --backend tpm\``,
        },
      );
    }
    throw new PsiError(
      "cache.tpm_key_unreadable",
      `tpm cache backend: cannot read ${path}: ${(error as Error).message}`,
      {
        cause: error,
        hint: `check that the unit loads it with \`${directive}\``,
      },
    );
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile() || stat.size !== TPM_KEY_LENGTH) {
      const what = stat.isFile() ? `${stat.size} bytes` : "not a regular file";
      // Never read (let alone print) a credential of the wrong shape: it may be some other secret.
      throw new PsiError(
        "cache.tpm_key_invalid",
        `tpm cache backend: ${path} is ${what}, expected a ${TPM_KEY_LENGTH}-byte key`,
        {
          hint:
            `${TPM_CREDENTIAL_NAME} must come from \`${directive}\` with the file written by ` +
            "`psi cache init --backend tpm` (not SetCredential=/LoadCredential= of another file); " +
            "re-run `psi cache init --backend tpm --force` if the sealed key was lost",
        },
      );
    }
    const key = Buffer.alloc(TPM_KEY_LENGTH);
    const { bytesRead } = await handle.read(key, 0, TPM_KEY_LENGTH, 0);
    if (bytesRead !== TPM_KEY_LENGTH) {
      key.fill(0);
      throw new PsiError(
        "cache.tpm_key_invalid",
        `tpm cache backend: ${path} changed while it was read`,
        {
          hint: `check that only systemd writes it (\`${directive}\`)`,
        },
      );
    }
    return key;
  } finally {
    await handle.close();
  }
}

/** Options of {@link createTpmCacheBackend}. */
export interface TpmBackendOptions extends TpmKeyOptions {
  /** Nonce source; injectable so tests can pin the bytes written. */
  randomBytes?: RandomBytes;
}

/** The tpm backend (tag 0x01): AES-256-GCM under the key from `$CREDENTIALS_DIRECTORY/psi-cache-key`. */
export function createTpmCacheBackend(options: TpmBackendOptions): CacheBackend {
  return aesKeyBackend({
    name: "tpm",
    tag: TPM_TAG,
    loadKey: () => readTpmKey(options),
    randomBytes: options.randomBytes,
  });
}

/**
 * A tpm backend over a key already in memory (what `initTpmKey` returns), so a fresh
 * cache can be written right after provisioning without decrypting the credential again.
 */
export function tpmCacheBackendFromKey(
  key: Uint8Array,
  options: { randomBytes?: RandomBytes } = {},
): CacheBackend {
  if (key.length !== TPM_KEY_LENGTH) {
    throw new PsiError(
      "cache.tpm_key_invalid",
      `tpm cache key must be ${TPM_KEY_LENGTH} bytes, got ${key.length}`,
    );
  }
  const own = Buffer.from(key);
  return aesKeyBackend({
    name: "tpm",
    tag: TPM_TAG,
    loadKey: async () => Buffer.from(own),
    randomBytes: options.randomBytes,
  });
}

/** The tpm cache backend, registered by name in the CLI's wiring. */
export const tpmCacheBackend = defineCacheBackend((context) =>
  createTpmCacheBackend({ env: context.env, configDir: context.paths.configDir }),
);
