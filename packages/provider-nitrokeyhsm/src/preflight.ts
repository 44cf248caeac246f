import { randomBytes, timingSafeEqual } from "node:crypto";
import { existsSync } from "node:fs";
import {
  type HsmSession,
  type HsmTokenSlot,
  listHsmSlots,
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
import { errorMessage, isPsiError } from "@psi/core";
import { openHybrid, sealHybrid } from "@psi/envelope";

/** The checks `psi nitrokeyhsm preflight` runs, in order. */
export const PREFLIGHT_STEPS = [
  "module_file",
  "module_load",
  "token",
  "pin_source",
  "login",
  "key",
  "public_key",
  "oaep",
  "pin",
] as const;

/** One check's identifier. */
export type PreflightStepId = (typeof PREFLIGHT_STEPS)[number];

/** One check: what was tested, how it went, and what to do about a failure. */
export interface PreflightStep {
  id: PreflightStepId;
  title: string;
  status: "ok" | "fail" | "skip";
  /** What was found (never a PIN or a secret). */
  detail: string;
  /** How to fix a failure. */
  fix?: string;
}

/** The whole preflight report. */
export interface PreflightReport {
  ok: boolean;
  steps: PreflightStep[];
  /** Slots with a token present, when the module loaded. */
  slots: HsmTokenSlot[];
}

/** Options of {@link preflightNitrokeyHsm}. */
export interface PreflightOptions {
  config?: NitrokeyHsmConfig | undefined;
  stateDir: string;
  env: Env;
}

const TITLES: Record<PreflightStepId, string> = {
  module_file: "PKCS#11 module file",
  module_load: "module loads",
  token: "token at the slot",
  pin_source: "PIN source",
  login: "login",
  key: "key found",
  public_key: "public key exportable",
  oaep: "OAEP round trip",
  pin: "key pinned",
};

const LOGIN_CODES = new Set([
  "hsm.pin_incorrect",
  "hsm.pin_locked",
  "hsm.login_failed",
  "hsm.session_failed",
]);

/**
 * Checks the HSM setup step by step (module, token, PIN, login, key, public key, an OAEP
 * round trip with the configured hash, the pin) and says what to fix for each failure.
 * Writes nothing (the public key cache and pin are `psi nitrokeyhsm init`'s job). Logs in
 * once: a wrong PIN costs one attempt, like any open.
 */
export async function preflightNitrokeyHsm(options: PreflightOptions): Promise<PreflightReport> {
  const config = options.config ?? nitrokeyHsmDefaults();
  const steps = new Map<PreflightStepId, PreflightStep>();
  const set = (
    id: PreflightStepId,
    status: PreflightStep["status"],
    detail: string,
    fix?: string,
  ): void => {
    steps.set(id, { id, title: TITLES[id], status, detail, ...(fix === undefined ? {} : { fix }) });
  };
  const failWith = (id: PreflightStepId, error: unknown): void => {
    set(id, "fail", errorMessage(error), isPsiError(error) ? error.hint : undefined);
  };
  const skipRest = (from: PreflightStepId, reason: string): void => {
    for (const id of PREFLIGHT_STEPS.slice(PREFLIGHT_STEPS.indexOf(from))) {
      if (!steps.has(id)) set(id, "skip", reason);
    }
  };
  const report = (slots: HsmTokenSlot[]): PreflightReport => {
    const ordered = PREFLIGHT_STEPS.map((id) => steps.get(id)).filter(
      (step): step is PreflightStep => step !== undefined,
    );
    return { ok: ordered.every((step) => step.status !== "fail"), steps: ordered, slots };
  };

  const modulePath = config.pkcs11_module;
  // The PIN source and the pin file do not need the token: check them whatever happens.
  let pin: { pin: string; source: string } | undefined;
  try {
    pin = await resolveHsmPin({ env: options.env, configPin: config.pin });
    set("pin_source", "ok", `from ${pin.source}`);
  } catch (error) {
    failWith("pin_source", error);
  }

  if (!existsSync(modulePath)) {
    set(
      "module_file",
      "fail",
      `${modulePath} does not exist`,
      "install the module (Nitrokey HSM: the opensc package, /usr/lib64/pkcs11/opensc-pkcs11.so) or set providers.nitrokeyhsm.pkcs11_module",
    );
    skipRest("module_load", "needs the module");
    return withPin(report([]), config, options.stateDir, undefined);
  }
  set("module_file", "ok", modulePath);

  let slots: HsmTokenSlot[];
  try {
    slots = listHsmSlots({ modulePath, initParams: config.init_params });
    set("module_load", "ok", `${slots.length} slot(s) with a token present`);
  } catch (error) {
    failWith("module_load", error);
    skipRest("token", "needs the module loaded");
    return withPin(report([]), config, options.stateDir, undefined);
  }

  const describeSlots =
    slots.length === 0
      ? "no slot has a token"
      : slots
          .map(
            (slot) =>
              `${slot.index}: "${slot.tokenLabel}" (${slot.tokenModel}, serial ${slot.tokenSerial})`,
          )
          .join("; ");
  const chosen = slots[config.slot];
  if (chosen === undefined) {
    set(
      "token",
      "fail",
      `slot ${config.slot} has no token; slots with a token: ${describeSlots}`,
      slots.length === 0
        ? "plug in the HSM and check that pcscd runs (systemctl status pcscd; in a container, the pcscd socket volume: psi nitrokeyhsm setup-pcscd)"
        : `set providers.nitrokeyhsm.slot to one of 0..${slots.length - 1}`,
    );
    skipRest("login", "needs a token");
    return withPin(report(slots), config, options.stateDir, undefined);
  }
  set(
    "token",
    "ok",
    `slot ${config.slot}: "${chosen.tokenLabel}" (${chosen.tokenModel}, serial ${chosen.tokenSerial}); slots with a token: ${describeSlots}`,
  );

  if (pin === undefined) {
    skipRest("login", "needs a PIN");
    return withPin(report(slots), config, options.stateDir, undefined);
  }

  let session: HsmSession;
  try {
    session = openHsmSession({
      modulePath,
      initParams: config.init_params,
      slot: config.slot,
      pin: pin.pin,
      pinSource: pin.source,
      keyId: config.key_id,
      keyLabel: config.key_label,
      oaepHash: config.oaep_hash,
    });
  } catch (error) {
    const code = isPsiError(error) ? error.code : "";
    if (code === "hsm.key_not_found") {
      set("login", "ok", `logged in with the PIN from ${pin.source}`);
      failWith("key", error);
      skipRest("public_key", "needs the key");
    } else if (code === "hsm.public_key_unavailable") {
      set("login", "ok", `logged in with the PIN from ${pin.source}`);
      set("key", "ok", keyWanted(config));
      failWith("public_key", error);
      skipRest("oaep", "needs the public key");
    } else if (LOGIN_CODES.has(code)) {
      failWith("login", error);
      skipRest("key", "needs a login");
    } else {
      // the module or token changed between the checks: report it where it belongs
      failWith(
        code.startsWith("hsm.module") || code === "hsm.initialize_failed" ? "module_load" : "login",
        error,
      );
      skipRest("key", "needs a session");
    }
    return withPin(report(slots), config, options.stateDir, undefined);
  }

  try {
    const info = session.info;
    set("login", "ok", `logged in with the PIN from ${pin.source}`);
    set(
      "key",
      "ok",
      `CKA_ID ${info.keyId || "(none)"}, label "${info.keyLabel}" (found by ${info.matchedBy === "id" ? "key_id" : "key_label"})`,
    );
    const der = session.publicKeyDer();
    const fingerprint = publicKeyFingerprint(der);
    set("public_key", "ok", `RSA public key sha256:${fingerprint}`);
    try {
      const probe = randomBytes(32);
      const blob = sealHybrid(probe, der, config.oaep_hash);
      const back = await openHybrid(blob, (wrapped) => session.unwrap(wrapped));
      if (back.length !== probe.length || !timingSafeEqual(back, probe)) {
        throw new Error("the round trip returned different bytes");
      }
      set(
        "oaep",
        "ok",
        `RSA-OAEP-${config.oaep_hash.toUpperCase()} wrap with the public key, unwrap on the token`,
      );
    } catch (error) {
      failWith("oaep", error);
    }
    return await withPin(report(slots), config, options.stateDir, der);
  } finally {
    session.close();
  }
}

function keyWanted(config: NitrokeyHsmConfig): string {
  return [
    config.key_id ? `CKA_ID ${config.key_id}` : "",
    config.key_label ? `label "${config.key_label}"` : "",
  ]
    .filter(Boolean)
    .join(" or ");
}

// The pin step: recorded, and equal to the token's key and the public key cache.
async function withPin(
  partial: PreflightReport,
  config: NitrokeyHsmConfig,
  stateDir: string,
  tokenDer: Uint8Array | undefined,
): Promise<PreflightReport> {
  const pinPath = publicKeyPinPath(stateDir);
  const cachePath = publicKeyCachePath(config.public_key_cache, stateDir);
  let step: PreflightStep;
  try {
    const pinned = await readPublicKeyPin(stateDir);
    const cached = await readPublicKeyCache(cachePath);
    const tokenFp = tokenDer === undefined ? undefined : publicKeyFingerprint(tokenDer);
    const cachedFp = cached === null ? undefined : publicKeyFingerprint(cached);
    if (pinned === null) {
      step = {
        id: "pin",
        title: TITLES.pin,
        status: "fail",
        detail: `no pin recorded (${pinPath})`,
        fix: "run `psi nitrokeyhsm init` to export the public key and pin it",
      };
    } else if (tokenFp !== undefined && tokenFp !== pinned) {
      step = {
        id: "pin",
        title: TITLES.pin,
        status: "fail",
        detail: `the key on the token (sha256:${tokenFp}) is not the pinned key (sha256:${pinned})`,
        fix: "if the HSM was replaced on purpose, `psi nitrokeyhsm init --force` (then re-create its secrets); otherwise the token was swapped: stop",
      };
    } else if (cachedFp !== undefined && cachedFp !== pinned) {
      step = {
        id: "pin",
        title: TITLES.pin,
        status: "fail",
        detail: `the public key cache ${cachePath} (sha256:${cachedFp}) is not the pinned key (sha256:${pinned})`,
        fix: "the file may have been substituted: delete it and run `psi nitrokeyhsm init`",
      };
    } else if (cachedFp === undefined) {
      step = {
        id: "pin",
        title: TITLES.pin,
        status: "fail",
        detail: `pinned sha256:${pinned}, but there is no public key cache at ${cachePath} (store needs it)`,
        fix: "run `psi nitrokeyhsm init`",
      };
    } else {
      step = {
        id: "pin",
        title: TITLES.pin,
        status: "ok",
        detail: `sha256:${pinned}${tokenFp === undefined ? " (public key cache matches; token not checked)" : " (token and public key cache match)"}`,
      };
    }
  } catch (error) {
    step = {
      id: "pin",
      title: TITLES.pin,
      status: "fail",
      detail: errorMessage(error),
      ...(isPsiError(error) && error.hint !== undefined ? { fix: error.hint } : {}),
    };
  }
  const steps = partial.steps.map((existing) => (existing.id === "pin" ? step : existing));
  if (!steps.some((existing) => existing.id === "pin")) steps.push(step);
  return { ...partial, steps, ok: steps.every((s) => s.status !== "fail") };
}
