import { createHash, createPublicKey } from "node:crypto";
import { readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { ensureDir, errorMessage, PsiError, writeFileAtomic } from "@psi/core";

/** Name of the pin file in `state_dir` (starts with "." so it is never listed as a secret). */
export const PUBLIC_KEY_PIN_FILE = ".nitrokeyhsm-pubkey.sha256";

/** Default name of the public key cache in `state_dir` (SPEC §2 `public_key_cache`). */
export const PUBLIC_KEY_CACHE_FILE = "nitrokeyhsm-pubkey.der";

const REPIN_HINT =
  "if the HSM or its key was replaced on purpose, re-pin with `psi nitrokeyhsm init --force` " +
  "(blobs and the cache made for the old key must then be re-created); otherwise treat the token or file as swapped and stop";

/** Where the public key cache lives: `public_key_cache`, else `<state_dir>/nitrokeyhsm-pubkey.der`. */
export function publicKeyCachePath(
  publicKeyCache: string | null | undefined,
  stateDir: string,
): string {
  return publicKeyCache ?? join(stateDir, PUBLIC_KEY_CACHE_FILE);
}

/** Where the pinned fingerprint lives: `<state_dir>/.nitrokeyhsm-pubkey.sha256`. */
export function publicKeyPinPath(stateDir: string): string {
  return join(stateDir, PUBLIC_KEY_PIN_FILE);
}

/** Canonical SubjectPublicKeyInfo DER of an RSA public key given as SPKI DER or PEM; throws on anything else. */
export function normalizePublicKey(bytes: Uint8Array): Uint8Array {
  const buffer = Buffer.from(bytes);
  const key = buffer.subarray(0, 10).toString("latin1").startsWith("-----")
    ? createPublicKey({ key: buffer.toString("utf8"), format: "pem" })
    : createPublicKey({ key: buffer, format: "der", type: "spki" });
  if (key.asymmetricKeyType !== "rsa") throw new Error(`not an RSA key (${key.asymmetricKeyType})`);
  return new Uint8Array(key.export({ type: "spki", format: "der" }));
}

/** SHA-256 of the key's SubjectPublicKeyInfo DER, lowercase hex: what the pin records. */
export function publicKeyFingerprint(der: Uint8Array): string {
  return createHash("sha256").update(normalizePublicKey(der)).digest("hex");
}

/** The pinned fingerprint, or null when no pin is recorded. */
export async function readPublicKeyPin(stateDir: string): Promise<string | null> {
  const path = publicKeyPinPath(stateDir);
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw new PsiError(
      "hsm.pin_file_unreadable",
      `cannot read the HSM key pin ${path}: ${errorMessage(error)}`,
      {
        hint: "check the permissions of state_dir",
        cause: error,
      },
    );
  }
  const fingerprint = text
    .trim()
    .toLowerCase()
    .replace(/^sha256:/, "");
  if (!/^[0-9a-f]{64}$/.test(fingerprint)) {
    throw new PsiError(
      "hsm.pin_file_invalid",
      `the HSM key pin ${path} does not hold a SHA-256 fingerprint`,
      {
        hint: REPIN_HINT,
      },
    );
  }
  return fingerprint;
}

/** What {@link pinPublicKey} did. */
export interface PinResult {
  path: string;
  fingerprint: string;
  /** The fingerprint pinned before, if any. */
  previous: string | null;
  /** False when the same key was already pinned (nothing written). */
  changed: boolean;
}

/**
 * Records the SHA-256 fingerprint of `der` as the trusted HSM key (SPEC §8.2 pinning), for
 * `psi nitrokeyhsm init` and `psi cache init --backend hsm`. Written atomically, mode 0600.
 * A different pinned key is `hsm.key_mismatch` unless `force` (deliberate re-pinning).
 */
export async function pinPublicKey(
  stateDir: string,
  der: Uint8Array,
  options: { force?: boolean } = {},
): Promise<PinResult> {
  const path = publicKeyPinPath(stateDir);
  const fingerprint = publicKeyFingerprint(der);
  const previous = await readPublicKeyPin(stateDir).catch((error: unknown) => {
    // a garbled pin file may be replaced deliberately
    if (options.force) return null;
    throw error;
  });
  if (previous === fingerprint) return { path, fingerprint, previous, changed: false };
  if (previous !== null && !options.force) {
    throw new PsiError(
      "hsm.key_mismatch",
      `the HSM key (sha256:${fingerprint}) differs from the pinned key (sha256:${previous}) in ${path}`,
      { hint: REPIN_HINT },
    );
  }
  await ensureDir(dirname(path));
  await writeFileAtomic(path, `${fingerprint}\n`, { mode: 0o600 });
  return { path, fingerprint, previous, changed: true };
}

/**
 * Compares `der` with the pinned fingerprint. No pin recorded → `{ pinned: false }` (the
 * caller warns); a different key → `hsm.key_mismatch` naming both fingerprints.
 * `what` names the key's origin in the message (the token, or the public key cache file).
 */
export async function verifyPublicKeyPin(
  stateDir: string,
  der: Uint8Array,
  what = "the key on the HSM",
): Promise<{ pinned: boolean; fingerprint: string }> {
  const fingerprint = publicKeyFingerprint(der);
  const pinned = await readPublicKeyPin(stateDir);
  if (pinned === null) return { pinned: false, fingerprint };
  if (pinned !== fingerprint) {
    throw new PsiError(
      "hsm.key_mismatch",
      `refusing to use the HSM: ${what} (sha256:${fingerprint}) is not the pinned key (sha256:${pinned}, ${publicKeyPinPath(stateDir)})`,
      { hint: REPIN_HINT },
    );
  }
  return { pinned: true, fingerprint };
}

/** The public key cache as canonical SPKI DER, or null when the file does not exist. */
export async function readPublicKeyCache(path: string): Promise<Uint8Array | null> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw new PsiError(
      "hsm.public_key_cache_unreadable",
      `cannot read the HSM public key cache ${path}: ${errorMessage(error)}`,
      {
        hint: "check the file's permissions, or delete it to export the key from the token again",
        cause: error,
      },
    );
  }
  try {
    return normalizePublicKey(bytes);
  } catch (error) {
    throw new PsiError(
      "hsm.public_key_cache_invalid",
      `the HSM public key cache ${path} is not an RSA public key: ${errorMessage(error)}`,
      {
        hint: "delete it; the next open exports the key from the token again",
        cause: error,
      },
    );
  }
}

/** Writes the public key cache atomically (DER; public, so mode 0644). */
export async function writePublicKeyCache(path: string, der: Uint8Array): Promise<void> {
  await ensureDir(dirname(path));
  await writeFileAtomic(path, normalizePublicKey(der), { mode: 0o644 });
}
