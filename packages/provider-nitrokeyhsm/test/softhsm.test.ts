import { randomBytes } from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { publicKeyPinPath } from "@psi/cache-hsm";
import { PsiError } from "@psi/core";
import { createSoftHsmToken, requireSoftHsm, type TestToken } from "@psi/testkit/pkcs11";
import { tempDir } from "@psi/testkit/tmp";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  createNitrokeyHsmProvider,
  initNitrokeyHsm,
  judgeNitrokeyHsmStatus,
  nitrokeyHsmStatus,
  preflightNitrokeyHsm,
  sealForStore,
  testHsmPin,
  testPinError,
} from "../src/index.js";
import { recordingLogger, rejection } from "./helpers.js";

// SoftHSM 2.6 only does OAEP with SHA-1: the oaep_hash: sha1 path, login and key lookup.
describe.skipIf(requireSoftHsm())("nitrokeyhsm provider on SoftHSM 2 (OAEP-SHA1)", () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  let token: TestToken;
  let stateDir: string;
  const secret = new TextEncoder().encode("postgres://app:pw@db/app");

  beforeAll(async () => {
    dir = await tempDir("psi-nkhsm-softhsm-");
    token = await createSoftHsmToken(dir.path);
  });
  afterAll(async () => {
    await token?.cleanup();
    await dir?.cleanup();
  });
  beforeEach(() => {
    stateDir = join(dir.path, `state-${randomBytes(4).toString("hex")}`);
  });

  const stepStatus = (report: Awaited<ReturnType<typeof preflightNitrokeyHsm>>) =>
    Object.fromEntries(report.steps.map((s) => [s.id, s.status]));

  it("round-trips a stored secret with oaep_hash sha1", async () => {
    const config = token.nitrokeyhsm();
    expect(config.oaep_hash).toBe("sha1");
    await initNitrokeyHsm({ config, stateDir, env: {} });
    const { mapping } = await sealForStore(secret, { config, stateDir });
    const p = createNitrokeyHsmProvider({ config, stateDir, env: {}, logger: recordingLogger() });
    await p.open();
    try {
      expect(Buffer.from(await p.lookup(mapping))).toEqual(Buffer.from(secret));
    } finally {
      await p.close();
    }
  });

  it("takes the PIN from $CREDENTIALS_DIRECTORY/hsm-pin first and says so", async () => {
    const creds = join(dir.path, `creds-${randomBytes(4).toString("hex")}`);
    await mkdir(creds);
    await writeFile(join(creds, "hsm-pin"), `${token.pin}\n`, { mode: 0o600 });
    const config = token.nitrokeyhsm({ pin: "wrong" });
    const result = await testHsmPin({ config, env: { CREDENTIALS_DIRECTORY: creds } });
    expect(result).toMatchObject({
      ok: true,
      pinSource: join(creds, "hsm-pin"),
      tokenLabel: "psi",
    });
    const fromEnv = await testHsmPin({
      config: token.nitrokeyhsm({ pin: null }),
      env: { PSI_NITROKEYHSM_PIN: token.pin },
    });
    expect(fromEnv).toMatchObject({ ok: true, pinSource: "PSI_NITROKEYHSM_PIN" });
    const none = await rejection(testHsmPin({ config: token.nitrokeyhsm({ pin: null }), env: {} }));
    expect(none.code).toBe("hsm.pin_missing");
  });

  it("a wrong PIN: open refuses, test-pin fails, preflight fails at login and skips the rest", async () => {
    const config = token.nitrokeyhsm({ pin: "000000" });
    const opened = await rejection(createNitrokeyHsmProvider({ config, stateDir, env: {} }).open());
    expect(opened.code).toBe("hsm.pin_incorrect");
    expect(opened.message).not.toContain("000000");

    const tested = await testHsmPin({ config, env: {} });
    expect(tested.ok).toBe(false);
    if (!tested.ok) expect(tested.error.code).toBe("hsm.pin_incorrect");

    const report = await preflightNitrokeyHsm({ config, stateDir, env: {} });
    expect(stepStatus(report)).toMatchObject({
      module_file: "ok",
      module_load: "ok",
      token: "ok",
      pin_source: "ok",
      login: "fail",
      key: "skip",
      public_key: "skip",
      oaep: "skip",
    });
    expect(report.steps.find((s) => s.id === "login")?.fix).toMatch(/locks after/);
    expect(JSON.stringify(report)).not.toContain("000000");

    const status = await nitrokeyHsmStatus({ config, stateDir, env: {} });
    expect(status.tokenError?.code).toBe("hsm.pin_incorrect");
  });

  it("preflight: the OAEP round trip fails with sha256 and says to use sha1", async () => {
    const config = token.nitrokeyhsm({ oaep_hash: "sha256" });
    const report = await preflightNitrokeyHsm({ config, stateDir, env: {} });
    const oaep = report.steps.find((s) => s.id === "oaep");
    expect(oaep?.status).toBe("fail");
    expect(oaep?.fix).toMatch(/oaep_hash/);
    expect(stepStatus(report)).toMatchObject({ login: "ok", key: "ok", public_key: "ok" });
  });

  it("preflight: a missing module, a missing slot and a missing key each stop at their step", async () => {
    const noModule = await preflightNitrokeyHsm({
      config: token.nitrokeyhsm({ pkcs11_module: join(dir.path, "nope.so") }),
      stateDir,
      env: {},
    });
    expect(stepStatus(noModule)).toMatchObject({
      module_file: "fail",
      module_load: "skip",
      token: "skip",
      pin_source: "ok",
      login: "skip",
    });
    expect(noModule.steps[0]?.fix).toMatch(/opensc/);

    const noSlot = await preflightNitrokeyHsm({
      config: token.nitrokeyhsm({ slot: 42 }),
      stateDir,
      env: {},
    });
    const slotStep = noSlot.steps.find((s) => s.id === "token");
    expect(slotStep?.status).toBe("fail");
    expect(slotStep?.detail).toContain('"psi"');

    const noKey = await preflightNitrokeyHsm({
      config: token.nitrokeyhsm({ key_id: "99", key_label: "absent" }),
      stateDir,
      env: {},
    });
    expect(stepStatus(noKey)).toMatchObject({ login: "ok", key: "fail", public_key: "skip" });
    // the PIN worked, so test-pin passes even without the key
    expect(
      (
        await testHsmPin({
          config: token.nitrokeyhsm({ key_id: "99", key_label: "absent" }),
          env: {},
        })
      ).ok,
    ).toBe(true);
  });

  it("judges the status: unpinned, pinned, mismatched, unreadable pin, failing token", async () => {
    const config = token.nitrokeyhsm();
    const judge = async (options: { offline?: boolean; pin?: string } = {}) => {
      const status = await nitrokeyHsmStatus({
        config: options.pin === undefined ? config : token.nitrokeyhsm({ pin: options.pin }),
        stateDir,
        env: {},
        offline: options.offline === true,
      });
      return { status, verdict: judgeNitrokeyHsmStatus(status) };
    };
    expect((await judge()).verdict).toEqual({
      ok: true,
      hints: ["run `psi nitrokeyhsm init` to pin the HSM key"],
    });
    await initNitrokeyHsm({ config, stateDir, env: {} });
    expect((await judge()).verdict).toEqual({ ok: true, hints: [] });

    const wrongPin = await judge({ pin: "000000" });
    expect(wrongPin.verdict.ok).toBe(false);
    expect(wrongPin.verdict.hints).toEqual([wrongPin.status.tokenError?.hint]);
    expect(wrongPin.verdict.hints[0]).toBeTruthy();

    // Another key pinned: the token and the public key cache no longer match it.
    await writeFile(publicKeyPinPath(stateDir), `${"a".repeat(64)}\n`);
    const swapped = await judge({ offline: true });
    expect(swapped.status.pin).toBe("mismatch");
    expect(swapped.verdict.ok).toBe(false);
    expect(swapped.verdict.hints[0]).toMatch(/not the pinned key.*preflight/);

    await writeFile(publicKeyPinPath(stateDir), "not a fingerprint\n");
    expect((await judge({ offline: true })).verdict).toEqual({ ok: false, hints: [] });
  });

  it("testPinError names the slot and the PIN's source, and hints at the slot", async () => {
    const config = token.nitrokeyhsm({ pin: "000000" });
    const tested = await testHsmPin({ config, env: {} });
    if (tested.ok) throw new Error("a wrong PIN logged in");
    const error = testPinError(tested);
    expect(error.code).toBe("hsm.pin_incorrect");
    expect(error.message).toBe(
      `test-pin: slot ${config.slot}, PIN from ${tested.pinSource}: ${tested.error.message}`,
    );
    expect(error.cause).toBe(tested.error);
    expect(error.hint).toBe(tested.error.hint);
    expect(error.message).not.toContain("000000");
    // A login error without a hint of its own gets the slot's.
    const bare = testPinError({ ...tested, error: new PsiError("hsm.login_failed", "no") });
    expect(bare.hint).toBe(
      `check providers.nitrokeyhsm.slot (${config.slot}) against \`pkcs11-tool --list-slots\``,
    );
  });
});
