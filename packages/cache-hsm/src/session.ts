import { createPublicKey } from "node:crypto";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { errorMessage, PsiError } from "@psi/core";
import type * as graphene from "graphene-pk11";

let grapheneModule: typeof graphene | undefined;

/** True for the errors Node gives when a native addon is missing or built for another Node. */
function isMissingAddon(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return (
    (code === "MODULE_NOT_FOUND" || code === "ERR_DLOPEN_FAILED") &&
    /pkcs11\.node|NODE_MODULE_VERSION/.test(errorMessage(error))
  );
}

/**
 * graphene-pk11, loaded on first use rather than at import: its addon (pkcs11js) is
 * compiled at install time, and an install that skipped the build must fail with the fix,
 * not with `Cannot find module './build/Release/pkcs11.node'`, and only on the HSM paths.
 */
function loadGraphene(): typeof graphene {
  if (grapheneModule) return grapheneModule;
  try {
    grapheneModule = createRequire(import.meta.url)("graphene-pk11") as typeof graphene;
  } catch (error) {
    if (!isMissingAddon(error)) throw error;
    throw new PsiError(
      "hsm.addon_missing",
      `the PKCS#11 addon (pkcs11js) is not built for this Node (${process.version}): ${errorMessage(error).split("\n")[0]}`,
      {
        hint:
          "reinstall allowing its build script, which needs a C++ compiler, make and python3: " +
          "`npm install -g --allow-scripts=pkcs11js @psi/cli` or `pnpm add -g --allow-build=pkcs11js @psi/cli`; " +
          "or run PSI from its container image",
        cause: error,
      },
    );
  }
  return grapheneModule;
}

/** The OAEP digest (and MGF1 digest) the token uses; SPEC §2 `oaep_hash`. */
export type OaepHash = "sha256" | "sha1";

/** Where the token and key are, and how to log in (SPEC §2 nitrokeyhsm block, §8.2). */
export interface HsmSessionOptions {
  /** Path of the PKCS#11 module (`pkcs11_module`). */
  modulePath: string;
  /** String handed to C_Initialize (`init_params`; NSS softokn needs its configdir). */
  initParams?: string | null;
  /** Index among the slots that have a token present (`slot`). */
  slot: number;
  /** User PIN (see {@link resolveHsmPin}). */
  pin: string;
  /** Where the PIN came from, named in a wrong-PIN error (`$CREDENTIALS_DIRECTORY/hsm-pin`, ...). */
  pinSource?: string;
  /** Hex CKA_ID of the RSA key, tried first (`key_id`). */
  keyId?: string | null;
  /** CKA_LABEL of the RSA key, tried when no key has the id (`key_label`). */
  keyLabel?: string | null;
  /** OAEP digest for unwrap (`oaep_hash`). */
  oaepHash: OaepHash;
}

/** What the session found: for status output and log lines (no secrets). */
export interface HsmSessionInfo {
  modulePath: string;
  slot: number;
  tokenLabel: string;
  tokenSerial: string;
  tokenModel: string;
  /** CKA_ID (hex) and CKA_LABEL of the private key that was found. */
  keyId: string;
  keyLabel: string;
  /** Whether the key was found by `key_id` or, failing that, by `key_label`. */
  matchedBy: "id" | "label";
  oaepHash: OaepHash;
}

/** A logged-in PKCS#11 session holding the RSA key that wraps PSI's AES keys. */
export interface HsmSession {
  readonly info: HsmSessionInfo;
  /** The key's public half as SubjectPublicKeyInfo DER (built from modulus + exponent). */
  publicKeyDer(): Uint8Array;
  /** RSA-OAEP decrypts `wrapped` on the token (MGF1 with the same digest, empty label). */
  unwrap(wrapped: Uint8Array): Uint8Array;
  /** Closes the session; the last session of a module finalizes and unloads it. Idempotent. */
  close(): void;
}

interface LoadedModule {
  module: graphene.Module;
  initParams: string | undefined;
  sessions: number;
}

// PKCS#11 state (initialization, login) is per process and per module: the hsm cache
// backend and the nitrokeyhsm provider share one token in `psi serve`, so the module is
// initialized once and finalized when its last session closes.
const loadedModules = new Map<string, LoadedModule>();

/** The CKR_* name of a PKCS#11 error, when it is one. */
function ckr(error: unknown): string | undefined {
  return /\b(CKR_[A-Z0-9_]+)/.exec(errorMessage(error))?.[1];
}

function acquireModule(modulePath: string, initParams: string | undefined): graphene.Module {
  const loaded = loadedModules.get(modulePath);
  if (loaded) {
    if (loaded.initParams !== initParams) {
      throw new PsiError(
        "hsm.module_busy",
        `PKCS#11 module ${modulePath} is already initialized in this process with different init_params`,
        { hint: "use the same providers.nitrokeyhsm.init_params everywhere in one process" },
      );
    }
    loaded.sessions += 1;
    return loaded.module;
  }
  // Outside the try: a missing addon is not a missing module.
  const { Module } = loadGraphene();
  let module: graphene.Module;
  try {
    module = Module.load(modulePath, "psi");
  } catch (error) {
    if (!existsSync(modulePath)) {
      throw new PsiError("hsm.module_missing", `PKCS#11 module ${modulePath} does not exist`, {
        hint: "install the module (Nitrokey HSM: the opensc package) or set providers.nitrokeyhsm.pkcs11_module to its path",
        cause: error,
      });
    }
    throw new PsiError(
      "hsm.module_missing",
      `PKCS#11 module ${modulePath} cannot be loaded: ${errorMessage(error)}`,
      {
        hint: "check that providers.nitrokeyhsm.pkcs11_module points at a PKCS#11 shared library for this architecture",
        cause: error,
      },
    );
  }
  try {
    module.initialize(initParams === undefined ? undefined : { libraryParameters: initParams });
  } catch (error) {
    try {
      module.close();
    } catch {
      // the load failed half-way; nothing more to release
    }
    throw new PsiError(
      "hsm.initialize_failed",
      `PKCS#11 module ${modulePath} failed to initialize: ${errorMessage(error)}`,
      {
        hint:
          initParams === undefined
            ? "check the module's own configuration (SoftHSM: SOFTHSM2_CONF; NSS softokn needs providers.nitrokeyhsm.init_params with its configdir)"
            : `check providers.nitrokeyhsm.init_params (${JSON.stringify(initParams)})`,
        cause: error,
      },
    );
  }
  loadedModules.set(modulePath, { module, initParams, sessions: 1 });
  return module;
}

function releaseModule(modulePath: string): void {
  const loaded = loadedModules.get(modulePath);
  if (!loaded) return;
  loaded.sessions -= 1;
  if (loaded.sessions > 0) return;
  loadedModules.delete(modulePath);
  try {
    loaded.module.finalize();
  } catch {
    // finalizing a module whose token vanished can fail; unloading still frees it
  }
  try {
    loaded.module.close();
  } catch {
    // already unloaded
  }
}

/** One slot with a token present, as `slot` counts them (for preflight and status output). */
export interface HsmTokenSlot {
  /** Index among the slots with a token present: what `providers.nitrokeyhsm.slot` means. */
  index: number;
  slotDescription: string;
  tokenLabel: string;
  tokenSerial: string;
  tokenModel: string;
  tokenManufacturer: string;
}

/**
 * Lists the slots of `modulePath` that have a token present, in the order `slot` indexes
 * them. Loads (and, unless a session holds it, unloads) the module; throws
 * `hsm.module_missing` or `hsm.initialize_failed` like {@link openHsmSession}.
 */
export function listHsmSlots(options: {
  modulePath: string;
  initParams?: string | null;
}): HsmTokenSlot[] {
  const module = acquireModule(options.modulePath, options.initParams ?? undefined);
  try {
    const slots = module.getSlots(true);
    const out: HsmTokenSlot[] = [];
    for (let index = 0; index < slots.length; index++) {
      const slot = slots.items(index);
      const token = slot.getToken();
      out.push({
        index,
        slotDescription: slot.slotDescription.trim(),
        tokenLabel: token.label.trim(),
        tokenSerial: token.serialNumber.trim(),
        tokenModel: token.model.trim(),
        tokenManufacturer: token.manufacturerID.trim(),
      });
    }
    return out;
  } finally {
    releaseModule(options.modulePath);
  }
}

function pinAttemptsNote(slot: graphene.Slot): string {
  const { TokenFlag } = loadGraphene();
  try {
    const flags = slot.getToken().flags;
    if (flags & TokenFlag.USER_PIN_LOCKED) return " The user PIN is now locked.";
    if (flags & TokenFlag.USER_PIN_FINAL_TRY) return " One attempt is left before the PIN locks.";
    if (flags & TokenFlag.USER_PIN_COUNT_LOW) return " The token reports few attempts left.";
  } catch {
    // flags are advisory
  }
  return "";
}

function login(
  slot: graphene.Slot,
  session: graphene.Session,
  options: HsmSessionOptions,
  where: string,
): void {
  try {
    session.login(options.pin, loadGraphene().UserType.USER);
  } catch (error) {
    const code = ckr(error);
    if (code === "CKR_USER_ALREADY_LOGGED_IN") return;
    const from = options.pinSource ? ` (PIN from ${options.pinSource})` : "";
    if (code === "CKR_PIN_INCORRECT" || code === "CKR_PIN_LEN_RANGE") {
      throw new PsiError(
        "hsm.pin_incorrect",
        `${where} rejected the user PIN${from}.${pinAttemptsNote(slot)}`,
        {
          hint: "check the PIN before retrying: the token locks after a few wrong attempts (Nitrokey HSM: 3); `psi nitrokeyhsm test-pin` tries it once",
          cause: error,
        },
      );
    }
    if (code === "CKR_PIN_LOCKED") {
      throw new PsiError("hsm.pin_locked", `${where}: the user PIN is locked${from}`, {
        hint: "unblock the user PIN with the SO PIN (Nitrokey HSM: sc-hsm-tool --unlock-pin), then update the PIN credential",
        cause: error,
      });
    }
    throw new PsiError(
      "hsm.login_failed",
      `${where}: login failed: ${errorMessage(error)}${from}`,
      {
        hint: "check that the token is initialized and its user PIN is set (pkcs11-tool --list-token-slots)",
        cause: error,
      },
    );
  }
}

function findPrivateKey(
  session: graphene.Session,
  keyId: string | undefined,
  keyLabel: string | undefined,
): { key: graphene.PrivateKey; matchedBy: "id" | "label" } | undefined {
  const { ObjectClass, KeyType } = loadGraphene();
  const base = { class: ObjectClass.PRIVATE_KEY, keyType: KeyType.RSA };
  if (keyId) {
    const found = session.find({ ...base, id: Buffer.from(keyId, "hex") });
    if (found.length > 0)
      return { key: found.items(0).toType<graphene.PrivateKey>(), matchedBy: "id" };
  }
  if (keyLabel) {
    const found = session.find({ ...base, label: keyLabel });
    if (found.length > 0)
      return { key: found.items(0).toType<graphene.PrivateKey>(), matchedBy: "label" };
  }
  return undefined;
}

function rsaComponents(
  object: graphene.SessionObject,
): { modulus: Buffer; publicExponent: Buffer } | undefined {
  try {
    const { modulus, publicExponent } = object.getAttribute({
      modulus: null,
      publicExponent: null,
    });
    if (Buffer.isBuffer(modulus) && Buffer.isBuffer(publicExponent) && modulus.length > 0) {
      return { modulus, publicExponent };
    }
  } catch {
    // not every token exposes the public exponent on the private key object
  }
  return undefined;
}

// The public half comes from the private key object itself when the token exposes its
// modulus and exponent (so it is certainly the key that unwraps), else from the public
// key object with the same CKA_ID.
function exportPublicKey(
  session: graphene.Session,
  key: graphene.PrivateKey,
  keyId: Buffer,
): Buffer | undefined {
  let parts = rsaComponents(key);
  if (!parts && keyId.length > 0) {
    const found = session.find({ class: loadGraphene().ObjectClass.PUBLIC_KEY, id: keyId });
    for (let i = 0; i < found.length && !parts; i++) parts = rsaComponents(found.items(i));
  }
  if (!parts) return undefined;
  const jwk = {
    kty: "RSA",
    n: parts.modulus.toString("base64url"),
    e: parts.publicExponent.toString("base64url"),
  };
  return createPublicKey({ key: jwk, format: "jwk" }).export({ type: "spki", format: "der" });
}

function oaepMechanism(hash: OaepHash): graphene.IAlgorithm {
  const { RsaOaepParams, MechanismEnum, RsaMgf } = loadGraphene();
  const params =
    hash === "sha256"
      ? new RsaOaepParams(MechanismEnum.SHA256, RsaMgf.MGF1_SHA256)
      : new RsaOaepParams(MechanismEnum.SHA1, RsaMgf.MGF1_SHA1);
  return { name: "RSA_PKCS_OAEP", params };
}

function decryptFailure(error: unknown, info: HsmSessionInfo): PsiError {
  const code = ckr(error);
  const where = `RSA-OAEP-${info.oaepHash.toUpperCase()} unwrap with key ${info.keyLabel || info.keyId} on token "${info.tokenLabel}"`;
  const unsupported =
    code === "CKR_ARGUMENTS_BAD" ||
    code === "CKR_MECHANISM_INVALID" ||
    code === "CKR_MECHANISM_PARAM_INVALID";
  const hint = unsupported
    ? `the token does not support OAEP with ${info.oaepHash} (SoftHSM 2.6 only does sha1): set providers.nitrokeyhsm.oaep_hash to what the token supports, before any data is written`
    : code === "CKR_DEVICE_REMOVED" ||
        code === "CKR_TOKEN_NOT_PRESENT" ||
        code === "CKR_SESSION_HANDLE_INVALID" ||
        code === "CKR_SESSION_CLOSED"
      ? "the token went away: check it is plugged in and pcscd runs, then restart the service"
      : `the data was encrypted for another key, or with another oaep_hash than ${info.oaepHash} (blobs do not record it), or it is corrupt`;
  return new PsiError("hsm.decrypt_failed", `${where} failed: ${errorMessage(error)}`, {
    hint,
    cause: error,
  });
}

/**
 * Opens a logged-in PKCS#11 session on the configured slot and finds the RSA key by
 * CKA_ID, then by label (SPEC §8.2). Every failure is a PsiError (`hsm.module_missing`,
 * `hsm.no_token`, `hsm.slot_out_of_range`, `hsm.pin_incorrect`, `hsm.key_not_found`, ...)
 * that says what to check.
 */
export function openHsmSession(options: HsmSessionOptions): HsmSession {
  const { modulePath } = options;
  const module = acquireModule(modulePath, options.initParams ?? undefined);
  let session: graphene.Session | undefined;
  try {
    const slots = module.getSlots(true);
    if (slots.length === 0) {
      throw new PsiError("hsm.no_token", `no PKCS#11 slot of ${modulePath} has a token present`, {
        hint: "plug in the HSM and check that pcscd runs (systemctl status pcscd; in a container, the pcscd socket volume)",
      });
    }
    if (!Number.isInteger(options.slot) || options.slot < 0 || options.slot >= slots.length) {
      throw new PsiError(
        "hsm.slot_out_of_range",
        `slot ${options.slot} is out of range: ${slots.length} slot(s) of ${modulePath} have a token present (valid: 0..${slots.length - 1})`,
        {
          hint: "set providers.nitrokeyhsm.slot to an index among the slots with a token (pkcs11-tool --module <module> --list-token-slots)",
        },
      );
    }
    const slot = slots.items(options.slot);
    const token = slot.getToken();
    const where = `token "${token.label}" (slot ${options.slot} of ${modulePath})`;
    try {
      const { SessionFlag } = loadGraphene();
      session = slot.open(SessionFlag.SERIAL_SESSION | SessionFlag.RW_SESSION);
    } catch (error) {
      throw new PsiError(
        "hsm.session_failed",
        `cannot open a read-write session on ${where}: ${errorMessage(error)}`,
        {
          hint: "check that the token is initialized and not write-protected, and that no other process holds it exclusively",
          cause: error,
        },
      );
    }
    login(slot, session, options, where);

    const keyId = options.keyId ? options.keyId.toLowerCase() : undefined;
    const keyLabel = options.keyLabel ?? undefined;
    const found = findPrivateKey(session, keyId, keyLabel);
    if (!found) {
      const wanted = [
        keyId ? `CKA_ID ${keyId}` : undefined,
        keyLabel ? `label "${keyLabel}"` : undefined,
      ]
        .filter(Boolean)
        .join(" or ");
      throw new PsiError(
        "hsm.key_not_found",
        `no RSA private key with ${wanted || "(no key_id or key_label set)"} on ${where}`,
        {
          hint: `list the keys (pkcs11-tool --module ${modulePath} --login --list-objects --type privkey) and set providers.nitrokeyhsm.key_id / key_label, or create one with \`psi nitrokeyhsm init\``,
        },
      );
    }
    const foundId = Buffer.from(found.key.id ?? Buffer.alloc(0));
    const der = exportPublicKey(session, found.key, foundId);
    if (!der) {
      throw new PsiError(
        "hsm.public_key_unavailable",
        `the RSA key on ${where} exposes neither its modulus nor a public key object`,
        {
          hint: "store the public key on the token next to the private key (same CKA_ID)",
        },
      );
    }
    const info: HsmSessionInfo = {
      modulePath,
      slot: options.slot,
      tokenLabel: token.label,
      tokenSerial: token.serialNumber,
      tokenModel: token.model,
      keyId: foundId.toString("hex"),
      keyLabel: found.key.label ?? "",
      matchedBy: found.matchedBy,
      oaepHash: options.oaepHash,
    };
    const privateKey = found.key;
    const mechanism = oaepMechanism(options.oaepHash);
    const modulusBytes = der.length; // comfortably larger than the modulus
    const open = session;
    let closed = false;
    return {
      info,
      publicKeyDer: () => new Uint8Array(der),
      unwrap(wrapped) {
        if (closed) {
          throw new PsiError("hsm.session_closed", `the PKCS#11 session on ${where} is closed`, {
            hint: "open the backend or provider again",
          });
        }
        const out = Buffer.alloc(modulusBytes);
        try {
          const plain = open.createDecipher(mechanism, privateKey).once(Buffer.from(wrapped), out);
          return new Uint8Array(plain);
        } catch (error) {
          throw decryptFailure(error, info);
        } finally {
          out.fill(0);
        }
      },
      close() {
        if (closed) return;
        closed = true;
        try {
          open.close();
        } catch {
          // a session on a removed token is already gone
        }
        releaseModule(modulePath);
      },
    };
  } catch (error) {
    try {
      session?.close();
    } catch {
      // best effort: the module is released below either way
    }
    releaseModule(modulePath);
    throw error;
  }
}
