import { constants, createPublicKey, publicEncrypt, randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { isPsiError, type PsiError } from "@psi/core";
import { createSoftHsmToken, requireSoftHsm, type TestToken } from "@psi/testkit/pkcs11";
import { tempDir } from "@psi/testkit/tmp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type HsmSessionOptions, openHsmSession } from "../src/index.js";

// SoftHSM 2.6: session, login and key lookup behaviour, and the oaep_hash: sha1 path.
const skip = requireSoftHsm();

function wrapFor(der: Uint8Array, secret: Uint8Array, hash: "sha1" | "sha256"): Uint8Array {
  return publicEncrypt(
    {
      key: createPublicKey({ key: Buffer.from(der), format: "der", type: "spki" }),
      padding: constants.RSA_PKCS1_OAEP_PADDING,
      oaepHash: hash,
    },
    secret,
  );
}

function failure(fn: () => unknown): PsiError {
  try {
    fn();
  } catch (error) {
    if (isPsiError(error)) return error;
    throw error;
  }
  throw new Error("expected a PsiError");
}

describe.skipIf(skip)("openHsmSession on SoftHSM (OAEP-SHA1)", () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  let token: TestToken;
  let options: HsmSessionOptions;

  beforeAll(async () => {
    dir = await tempDir("psi-hsm-softhsm-");
    token = await createSoftHsmToken(dir.path);
    options = {
      modulePath: token.modulePath,
      slot: token.slot,
      pin: token.pin,
      keyId: token.keyId,
      keyLabel: token.keyLabel,
      oaepHash: "sha1",
    };
  });
  afterAll(async () => {
    await token?.cleanup();
    await dir?.cleanup();
  });

  it("finds the key by CKA_ID, exports its public key and unwraps on the token", () => {
    const session = openHsmSession(options);
    try {
      expect(Buffer.from(session.publicKeyDer())).toEqual(Buffer.from(token.publicKeyDer!));
      expect(session.info).toMatchObject({
        tokenLabel: "psi",
        keyId: "02",
        keyLabel: "podman-secrets",
        matchedBy: "id",
      });
      const secret = randomBytes(32);
      expect(Buffer.from(session.unwrap(wrapFor(session.publicKeyDer(), secret, "sha1")))).toEqual(
        secret,
      );
    } finally {
      session.close();
    }
  });

  it("falls back to the label when no key has the id", () => {
    const session = openHsmSession({ ...options, keyId: "99" });
    try {
      expect(session.info.matchedBy).toBe("label");
      expect(session.info.keyId).toBe("02");
    } finally {
      session.close();
    }
  });

  it("names the id and the label when neither finds a key", () => {
    const error = failure(() => openHsmSession({ ...options, keyId: "99", keyLabel: "nope" }));
    expect(error.code).toBe("hsm.key_not_found");
    expect(error.message).toContain("CKA_ID 99");
    expect(error.message).toContain('label "nope"');
    expect(error.message).toContain('token "psi"');
  });

  it("rejects a wrong PIN without echoing it, and a right one still works afterwards", () => {
    const error = failure(() =>
      openHsmSession({ ...options, pin: "654321", pinSource: "PSI_NITROKEYHSM_PIN" }),
    );
    expect(error.code).toBe("hsm.pin_incorrect");
    expect(error.message).toContain("PSI_NITROKEYHSM_PIN");
    expect(`${error.message} ${error.hint}`).not.toContain("654321");
    openHsmSession(options).close();
  });

  it("says how many slots have a token when the slot is out of range", () => {
    const error = failure(() => openHsmSession({ ...options, slot: 7 }));
    expect(error.code).toBe("hsm.slot_out_of_range");
    expect(error.message).toMatch(/slot 7 is out of range: 2 slot\(s\)/);
  });

  it("reports a missing module and a file that is not a module", async () => {
    const missing = failure(() =>
      openHsmSession({ ...options, modulePath: join(dir.path, "nope.so") }),
    );
    expect(missing.code).toBe("hsm.module_missing");
    expect(missing.message).toContain("nope.so");
    const bogus = join(dir.path, "bogus.so");
    await writeFile(bogus, "not a shared library");
    const invalid = failure(() => openHsmSession({ ...options, modulePath: bogus }));
    expect(invalid.code).toBe("hsm.module_missing");
    expect(invalid.message).toContain("cannot be loaded");
  });

  it("fails to unwrap garbage with hsm.decrypt_failed, and the session keeps working", () => {
    const session = openHsmSession(options);
    try {
      expect(failure(() => session.unwrap(randomBytes(256))).code).toBe("hsm.decrypt_failed");
      const secret = randomBytes(32);
      expect(Buffer.from(session.unwrap(wrapFor(session.publicKeyDer(), secret, "sha1")))).toEqual(
        secret,
      );
    } finally {
      session.close();
    }
  });

  it("explains that SoftHSM cannot do OAEP-SHA256", () => {
    const session = openHsmSession({ ...options, oaepHash: "sha256" });
    try {
      const error = failure(() =>
        session.unwrap(wrapFor(session.publicKeyDer(), randomBytes(32), "sha256")),
      );
      expect(error.code).toBe("hsm.decrypt_failed");
      expect(error.hint).toContain("oaep_hash");
    } finally {
      session.close();
    }
  });

  it("shares the module between sessions and finalizes it with the last one", () => {
    const first = openHsmSession(options);
    const second = openHsmSession(options); // already logged in: fine
    const secret = randomBytes(32);
    const wrapped = wrapFor(first.publicKeyDer(), secret, "sha1");
    first.close();
    first.close(); // idempotent
    expect(failure(() => first.unwrap(wrapped)).code).toBe("hsm.session_closed");
    expect(Buffer.from(second.unwrap(wrapped))).toEqual(secret);
    second.close();
    // the module was finalized and unloaded: a fresh open initializes it again
    const third = openHsmSession(options);
    expect(Buffer.from(third.unwrap(wrapped))).toEqual(secret);
    third.close();
  });
});
