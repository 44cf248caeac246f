import { readdir } from "node:fs/promises";
import {
  type HsmSessionInfo,
  nitrokeyHsmDefaults,
  openHsmSession,
  publicKeyCachePath,
  publicKeyFingerprint,
  publicKeyPinPath,
  readPublicKeyCache,
  readPublicKeyPin,
  resolveHsmPin,
} from "@psi/cache-hsm";
import type { Env, NitrokeyHsmConfig } from "@psi/core";
import {
  errorMessage,
  isPsiError,
  isReservedStateFile,
  PsiError,
  parseMapping,
  readMappingFile,
} from "@psi/core";
import { NITROKEYHSM_PROVIDER } from "./blob.js";

/** How many mapping files in state_dir belong to the nitrokeyhsm provider. */
export interface MappingCount {
  /** nitrokeyhsm mappings. */
  nitrokeyhsm: number;
  /** Every mapping file (any provider, plus unreadable ones). */
  total: number;
  /** Files that are not a readable mapping. */
  unreadable: number;
}

/** Counts the nitrokeyhsm mappings in `stateDir` (SPEC §3); a missing directory holds none. */
export async function countNitrokeyHsmMappings(stateDir: string): Promise<MappingCount> {
  const count: MappingCount = { nitrokeyhsm: 0, total: 0, unreadable: 0 };
  let names: string[];
  try {
    names = await readdir(stateDir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return count;
    throw new PsiError(
      "nitrokeyhsm.state_unreadable",
      `cannot list ${stateDir}: ${errorMessage(error)}`,
      {
        cause: error,
        hint: "check the permissions of state_dir",
      },
    );
  }
  for (const name of names) {
    if (isReservedStateFile(name)) continue;
    count.total += 1;
    try {
      // The lookup path's reader and parser: bounded, no symlink, no FIFO, a JSON object
      // with a provider. Gone since the listing counts as not a mapping too.
      const bytes = await readMappingFile(stateDir, name);
      if (bytes === undefined) throw new Error(`${name} is gone`);
      if (parseMapping(bytes).provider === NITROKEYHSM_PROVIDER) count.nitrokeyhsm += 1;
    } catch {
      // a directory, an unreadable file or one that is not a mapping
      count.unreadable += 1;
    }
  }
  return count;
}

/** `psi nitrokeyhsm status`: what is configured, found and pinned (never a PIN or secret). */
export interface NitrokeyHsmStatus {
  module: string;
  slot: number;
  keyId: string | null;
  keyLabel: string | null;
  oaepHash: "sha256" | "sha1";
  pinSource: string | null;
  /** The session's view, when the token could be opened. */
  token: HsmSessionInfo | null;
  /** Why the token could not be opened (message and hint). */
  tokenError: { code: string; message: string; hint?: string } | null;
  /** Fingerprint of the key on the token. */
  tokenFingerprint: string | null;
  pinPath: string;
  pinnedFingerprint: string | null;
  publicKeyCachePath: string;
  cachedFingerprint: string | null;
  /** `matching`: token (when reachable) and cache equal the pin; `mismatch`; `not pinned`. */
  pin: "matching" | "mismatch" | "not pinned" | "unreadable";
  mappings: MappingCount;
}

/** Options of {@link nitrokeyHsmStatus}. */
export interface StatusOptions {
  config?: NitrokeyHsmConfig | undefined;
  stateDir: string;
  env: Env;
  /** Skip logging in to the token (pin and mappings only). */
  offline?: boolean;
}

function describe(error: unknown): { code: string; message: string; hint?: string } {
  if (isPsiError(error)) {
    return {
      code: error.code,
      message: error.message,
      ...(error.hint ? { hint: error.hint } : {}),
    };
  }
  return { code: "error", message: errorMessage(error) };
}

/**
 * Gathers the status: opens the token (one login) unless `offline`, reads the pin and
 * the public key cache, counts nitrokeyhsm mappings. Never throws for a token problem:
 * it is reported in `tokenError`.
 */
export async function nitrokeyHsmStatus(options: StatusOptions): Promise<NitrokeyHsmStatus> {
  const config = options.config ?? nitrokeyHsmDefaults();
  const cachePath = publicKeyCachePath(config.public_key_cache, options.stateDir);
  let pinSource: string | null = null;
  let token: HsmSessionInfo | null = null;
  let tokenError: NitrokeyHsmStatus["tokenError"] = null;
  let tokenFingerprint: string | null = null;
  if (!options.offline) {
    try {
      const pin = await resolveHsmPin({ env: options.env, configPin: config.pin });
      pinSource = pin.source;
      const session = openHsmSession({
        modulePath: config.pkcs11_module,
        initParams: config.init_params,
        slot: config.slot,
        pin: pin.pin,
        pinSource: pin.source,
        keyId: config.key_id,
        keyLabel: config.key_label,
        oaepHash: config.oaep_hash,
      });
      try {
        token = session.info;
        tokenFingerprint = publicKeyFingerprint(session.publicKeyDer());
      } finally {
        session.close();
      }
    } catch (error) {
      tokenError = describe(error);
    }
  }
  let pinnedFingerprint: string | null = null;
  let cachedFingerprint: string | null = null;
  let pin: NitrokeyHsmStatus["pin"];
  try {
    pinnedFingerprint = await readPublicKeyPin(options.stateDir);
    const cached = await readPublicKeyCache(cachePath);
    cachedFingerprint = cached === null ? null : publicKeyFingerprint(cached);
    if (pinnedFingerprint === null) pin = "not pinned";
    else if (
      (tokenFingerprint !== null && tokenFingerprint !== pinnedFingerprint) ||
      (cachedFingerprint !== null && cachedFingerprint !== pinnedFingerprint)
    )
      pin = "mismatch";
    else pin = "matching";
  } catch {
    pin = "unreadable";
  }
  return {
    module: config.pkcs11_module,
    slot: config.slot,
    keyId: config.key_id,
    keyLabel: config.key_label,
    oaepHash: config.oaep_hash,
    pinSource,
    token,
    tokenError,
    tokenFingerprint,
    pinPath: publicKeyPinPath(options.stateDir),
    pinnedFingerprint,
    publicKeyCachePath: cachePath,
    cachedFingerprint,
    pin,
    mappings: await countNitrokeyHsmMappings(options.stateDir),
  };
}

/** Whether a status is healthy (else `psi nitrokeyhsm status` exits 1) and what to do next. */
export interface NitrokeyHsmStatusVerdict {
  /** False when the token failed or the pin mismatches or cannot be read. */
  ok: boolean;
  /** What the operator does about it, most pressing first. */
  hints: string[];
}

/** Judges a {@link nitrokeyHsmStatus}: healthy or not, and the hints that go with it. */
export function judgeNitrokeyHsmStatus(status: NitrokeyHsmStatus): NitrokeyHsmStatusVerdict {
  const hints: string[] = [];
  if (status.tokenError?.hint) hints.push(status.tokenError.hint);
  if (status.pin === "not pinned") hints.push("run `psi nitrokeyhsm init` to pin the HSM key");
  if (status.pin === "mismatch") {
    hints.push(
      "the token or the public key cache is not the pinned key: `psi nitrokeyhsm preflight` says which",
    );
  }
  const ok = status.tokenError === null && status.pin !== "mismatch" && status.pin !== "unreadable";
  return { ok, hints };
}

/** Options of {@link testHsmPin}. */
export interface TestPinOptions {
  config?: NitrokeyHsmConfig | undefined;
  env: Env;
}

/** What a PIN test found: where the PIN came from (never the PIN) and whether login worked. */
export type TestPinResult =
  | { ok: true; pinSource: string; slot: number; tokenLabel: string | null }
  | { ok: false; pinSource: string; slot: number; error: PsiError };

/**
 * `psi nitrokeyhsm test-pin`: resolves the PIN and logs in once. A login that works but
 * finds no key still passes (the PIN is what is tested). Throws only when no PIN is
 * configured (`hsm.pin_missing`); a failed login is `{ ok: false, error }`.
 */
export async function testHsmPin(options: TestPinOptions): Promise<TestPinResult> {
  const config = options.config ?? nitrokeyHsmDefaults();
  const pin = await resolveHsmPin({ env: options.env, configPin: config.pin });
  const base = { pinSource: pin.source, slot: config.slot };
  try {
    const session = openHsmSession({
      modulePath: config.pkcs11_module,
      initParams: config.init_params,
      slot: config.slot,
      pin: pin.pin,
      pinSource: pin.source,
      keyId: config.key_id,
      keyLabel: config.key_label,
      oaepHash: config.oaep_hash,
    });
    const tokenLabel = session.info.tokenLabel;
    session.close();
    return { ok: true, ...base, tokenLabel };
  } catch (error) {
    // these come after a successful login
    if (isPsiError(error, "hsm.key_not_found") || isPsiError(error, "hsm.public_key_unavailable")) {
      return { ok: true, ...base, tokenLabel: null };
    }
    const failure = isPsiError(error)
      ? error
      : new PsiError("hsm.login_failed", `HSM login failed: ${errorMessage(error)}`, {
          cause: error,
        });
    return { ok: false, ...base, error: failure };
  }
}

/**
 * A failed PIN test as one error naming the slot and the PIN's source (a bad slot and a
 * wrong PIN look alike to an operator otherwise), with a hint at the slot when the login
 * error has none.
 */
export function testPinError(failure: Extract<TestPinResult, { ok: false }>): PsiError {
  const { error, slot, pinSource } = failure;
  return new PsiError(
    error.code,
    `test-pin: slot ${slot}, PIN from ${pinSource}: ${error.message}`,
    {
      cause: error,
      hint:
        error.hint ??
        `check providers.nitrokeyhsm.slot (${slot}) against \`pkcs11-tool --list-slots\``,
    },
  );
}
