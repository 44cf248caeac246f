import {
  nitrokeyHsmDefaults,
  publicKeyCachePath,
  readPublicKeyCache,
  verifyPublicKeyPin,
} from "@psi/cache-hsm";
import type { LoadedConfig, NitrokeyHsmConfig } from "@psi/core";
import { PsiError } from "@psi/core";
import { type NitrokeyHsmMapping, sealNitrokeyHsmMapping } from "./blob.js";
import { nitrokeyHsmProviderSettings } from "./settings.js";

/** Where store finds the public key: the config block and state_dir. */
export interface StoreKeyOptions {
  /** `providers.nitrokeyhsm`; absent → the defaults of SPEC §2. */
  config?: NitrokeyHsmConfig | undefined;
  stateDir: string;
}

/** The public key store seals with, and why it is trusted. */
export interface StorePublicKey {
  der: Uint8Array;
  /** The public key cache file it came from. */
  path: string;
  /** SHA-256 of the SPKI DER, hex (equal to the pin). */
  fingerprint: string;
}

/**
 * The public key `psi nitrokeyhsm store` seals with: the public key cache, checked
 * against the pinned fingerprint. Needs no token, so secrets can be stored on a host
 * (or in a container) without the HSM. Refuses a missing cache or pin
 * (`nitrokeyhsm.not_initialized`) and a cache that is not the pinned key (`hsm.key_mismatch`):
 * a substituted file must never receive a secret.
 */
export async function readStorePublicKey(options: StoreKeyOptions): Promise<StorePublicKey> {
  const config = options.config ?? nitrokeyHsmDefaults();
  const path = publicKeyCachePath(config.public_key_cache, options.stateDir);
  const der = await readPublicKeyCache(path);
  if (der === null) {
    throw new PsiError(
      "nitrokeyhsm.not_initialized",
      `no HSM public key cache at ${path}: the HSM has not been initialized on this host`,
      {
        hint: "run `psi nitrokeyhsm init` once with the HSM attached (it exports the public key and pins it)",
      },
    );
  }
  const { pinned, fingerprint } = await verifyPublicKeyPin(
    options.stateDir,
    der,
    `the public key cache ${path}`,
  );
  if (!pinned) {
    throw new PsiError(
      "nitrokeyhsm.not_initialized",
      `the HSM public key in ${path} is not pinned, so nothing proves it is the HSM's key`,
      {
        hint: "run `psi nitrokeyhsm init` with the HSM attached: it checks the key on the token and records its fingerprint",
      },
    );
  }
  return { der, path, fingerprint };
}

/** What {@link sealForStore} produced (the plaintext is not kept). */
export interface StoredMapping {
  mapping: NitrokeyHsmMapping;
  /** The mapping bytes Podman stores (Python `json.dumps` form). */
  bytes: Uint8Array;
  /** Fingerprint of the key it was sealed for. */
  fingerprint: string;
}

/**
 * Seals `plaintext` for `psi nitrokeyhsm store`: the pinned public key from the cache,
 * OAEP with the configured `oaep_hash`. Refuses an empty value (`nitrokeyhsm.empty_value`).
 */
export async function sealForStore(
  plaintext: Uint8Array,
  options: StoreKeyOptions,
): Promise<StoredMapping> {
  if (plaintext.byteLength === 0) {
    throw new PsiError("nitrokeyhsm.empty_value", "refusing to store an empty secret", {
      hint: 'pipe the value on stdin, e.g. `printf %s "$VALUE" | psi nitrokeyhsm store NAME`',
    });
  }
  const config = options.config ?? nitrokeyHsmDefaults();
  const key = await readStorePublicKey(options);
  const { mapping, bytes } = sealNitrokeyHsmMapping(plaintext, key.der, config.oaep_hash);
  return { mapping, bytes, fingerprint: key.fingerprint };
}

/** What {@link sealNitrokeyHsmSecret} produced, with the state_dir the mapping belongs in. */
export interface SealedNitrokeyHsmSecret extends StoredMapping {
  stateDir: string;
}

/**
 * `psi nitrokeyhsm store` (SPEC §8.2): seals the value `read` returns for the pinned key of
 * `loaded`'s providers.nitrokeyhsm, then zeroes the value. Refuses before reading when the
 * provider is not configured (`nitrokeyhsm.not_configured`). Needs no token.
 */
export async function sealNitrokeyHsmSecret(
  loaded: LoadedConfig,
  read: () => Promise<Uint8Array>,
): Promise<SealedNitrokeyHsmSecret> {
  const settings = nitrokeyHsmProviderSettings(loaded);
  const value = await read();
  try {
    return { ...(await sealForStore(value, settings)), stateDir: settings.stateDir };
  } finally {
    value.fill(0);
  }
}
