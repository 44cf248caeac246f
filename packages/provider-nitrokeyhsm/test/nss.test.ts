import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { mkdir, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { PUBLIC_KEY_CACHE_FILE, PUBLIC_KEY_PIN_FILE, publicKeyFingerprint } from "@psi/cache-hsm";
import { loadConfig } from "@psi/core";
import { createNssToken, requireNss, type TestToken } from "@psi/testkit/pkcs11";
import { tempDir } from "@psi/testkit/tmp";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  countNitrokeyHsmMappings,
  createNitrokeyHsmProvider,
  initNitrokeyHsm,
  nitrokeyHsmStatus,
  nitrokeyhsmProvider,
  preflightNitrokeyHsm,
  sealForStore,
  sealNitrokeyHsmMapping,
  sealNitrokeyHsmSecret,
} from "../src/index.js";
import { recordingLogger, rejection, VECTORS } from "./helpers.js";

// NSS softokn does RSA-OAEP with SHA-256, PSI's default and what the shared vectors use.
describe.skipIf(requireNss())("nitrokeyhsm provider on NSS softokn (OAEP-SHA256)", () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  let token: TestToken;
  let stateDir: string;
  const secret = new TextEncoder().encode("hunter2-ü\u0000");

  beforeAll(async () => {
    dir = await tempDir("psi-nkhsm-nss-");
    token = await createNssToken(dir.path);
    await token.importPrivateKey(readFileSync(join(VECTORS, "hsm-private-key.pem"), "utf8"), {
      id: "03",
      label: "vector",
    });
  });
  afterAll(async () => {
    await token?.cleanup();
    await dir?.cleanup();
  });
  beforeEach(async () => {
    stateDir = join(dir.path, `state-${randomBytes(4).toString("hex")}`);
  });

  const provider = (config = token.nitrokeyhsm()) =>
    createNitrokeyHsmProvider({ config, stateDir, env: {}, logger: recordingLogger() });

  it("stores with the pinned public key cache alone and looks the secret up on the token", async () => {
    const init = await initNitrokeyHsm({ config: token.nitrokeyhsm(), stateDir, env: {} });
    expect(init).toMatchObject({
      fingerprint: publicKeyFingerprint(token.publicKeyDer!),
      previous: null,
      changed: true,
      pinSource: "providers.nitrokeyhsm.pin",
    });
    expect(init.info).toMatchObject({ keyId: "02", keyLabel: "podman-secrets", matchedBy: "id" });
    expect(await readFile(join(stateDir, PUBLIC_KEY_CACHE_FILE))).toEqual(
      Buffer.from(token.publicKeyDer!),
    );
    expect((await stat(join(stateDir, PUBLIC_KEY_PIN_FILE))).mode & 0o777).toBe(0o600);

    const stored = await sealForStore(secret, { config: token.nitrokeyhsm(), stateDir });
    expect(stored.fingerprint).toBe(init.fingerprint);
    const text = Buffer.from(stored.bytes).toString("utf8");
    expect(text).toMatch(/^\{"provider": "nitrokeyhsm", "blob": "[A-Za-z0-9+/=]+"\}$/);
    expect(text).not.toContain("hunter2");

    const p = provider();
    await p.open();
    try {
      expect(Buffer.from(await p.lookup(JSON.parse(text)))).toEqual(Buffer.from(secret));
    } finally {
      await p.close();
    }
  });

  it("sealNitrokeyHsmSecret seals what it reads for the pinned key and zeroes it; unconfigured, it reads nothing", async () => {
    await initNitrokeyHsm({ config: token.nitrokeyhsm(), stateDir, env: {} });
    const file = join(dir.path, `config-${randomBytes(4).toString("hex")}.yaml`);
    const load = async (config: object) => {
      // JSON is YAML: the configuration file as a person would write it.
      await writeFile(file, JSON.stringify({ state_dir: stateDir, ...config }));
      return loadConfig({ path: file, env: {}, uid: process.getuid?.() ?? 1000 });
    };
    const loaded = await load({ providers: { nitrokeyhsm: token.nitrokeyhsm() } });
    const value = Buffer.from(secret);
    const sealed = await sealNitrokeyHsmSecret(loaded, async () => value);
    expect(sealed.stateDir).toBe(stateDir);
    expect(sealed.fingerprint).toBe(publicKeyFingerprint(token.publicKeyDer!));
    expect(value.every((byte) => byte === 0)).toBe(true);
    const p = provider();
    await p.open();
    try {
      const mapping = JSON.parse(Buffer.from(sealed.bytes).toString("utf8"));
      expect(Buffer.from(await p.lookup(mapping))).toEqual(Buffer.from(secret));
    } finally {
      await p.close();
    }

    let read = false;
    const unconfigured = await load({ providers: { local: {} } });
    const refused = await rejection(
      sealNitrokeyHsmSecret(unconfigured, async () => {
        read = true;
        return Buffer.from("value");
      }),
    );
    expect(refused.code).toBe("nitrokeyhsm.not_configured");
    expect(read).toBe(false);
  });

  it("is the provider the CLI wires: built from a PsiContext", async () => {
    await initNitrokeyHsm({ config: token.nitrokeyhsm(), stateDir, env: {} });
    const logger = recordingLogger();
    const p = nitrokeyhsmProvider({
      config: { providers: { nitrokeyhsm: token.nitrokeyhsm() } } as never,
      scope: "user",
      paths: { stateDir } as never,
      logger,
      env: {},
    });
    expect(p.name).toBe("nitrokeyhsm");
    const early = await rejection(p.lookup({ provider: "nitrokeyhsm", blob: "AAAA" }));
    expect(early.code).toBe("nitrokeyhsm.not_open");
    await p.open();
    try {
      const { mapping } = sealNitrokeyHsmMapping(secret, token.publicKeyDer!);
      expect(Buffer.from(await p.lookup(mapping))).toEqual(Buffer.from(secret));
    } finally {
      await p.close();
    }
    expect(logger.lines.some((l) => l.fields?.event === "hsm.unpinned")).toBe(false);
  });

  it("decrypts the shared vector nitrokeyhsm-mapping.json with the imported key", async () => {
    const manifest = JSON.parse(readFileSync(join(VECTORS, "manifest.json"), "utf8")) as {
      nitrokeyhsm_plaintext_b64: string;
    };
    const mapping = JSON.parse(readFileSync(join(VECTORS, "nitrokeyhsm-mapping.json"), "utf8"));
    const logger = recordingLogger();
    const p = createNitrokeyHsmProvider({
      config: token.nitrokeyhsm({ key_id: "03", key_label: "vector" }),
      stateDir,
      env: {},
      logger,
    });
    await p.open();
    try {
      expect(Buffer.from(await p.lookup(mapping)).toString("base64")).toBe(
        manifest.nitrokeyhsm_plaintext_b64,
      );
    } finally {
      await p.close();
    }
    // nothing was pinned for this state_dir: open says so
    expect(logger.lines.filter((l) => l.fields?.event === "hsm.unpinned")).toHaveLength(1);
  });

  it("reports a blob for another key as an unwrap failure on the token, and damage as corrupt", async () => {
    const p = provider();
    await p.open();
    try {
      const vector = JSON.parse(readFileSync(join(VECTORS, "nitrokeyhsm-mapping.json"), "utf8"));
      const wrongKey = await rejection(p.lookup(vector));
      expect(wrongKey.code).toBe("nitrokeyhsm.unwrap_failed");
      expect(wrongKey.message).toMatch(/RSA-OAEP-SHA256 unwrap/);

      const { mapping } = sealNitrokeyHsmMapping(secret, token.publicKeyDer!);
      const bytes = Buffer.from(mapping.blob, "base64");
      bytes[bytes.length - 1]! ^= 0x80;
      const tampered = await rejection(
        p.lookup({ provider: "nitrokeyhsm", blob: bytes.toString("base64") }),
      );
      expect(tampered.code).toBe("nitrokeyhsm.corrupt_blob");
      const notBase64 = await rejection(p.lookup({ provider: "nitrokeyhsm", blob: "%%%" }));
      expect(notBase64.code).toBe("nitrokeyhsm.corrupt_blob");
    } finally {
      await p.close();
    }
  });

  it("refuses a swapped key: open, store and init all stop; init --force re-pins", async () => {
    const swap = token.nitrokeyhsm({ key_id: "04", key_label: "swap" });
    const original = await token.generateKeyPair({ id: "04", label: "swap", replace: true });
    await initNitrokeyHsm({ config: swap, stateDir, env: {} });
    const replaced = await token.generateKeyPair({ id: "04", label: "swap", replace: true });

    const opened = await rejection(provider(swap).open());
    expect(opened.code).toBe("hsm.key_mismatch");
    expect(opened.message).toContain(publicKeyFingerprint(original));
    expect(opened.message).toContain(publicKeyFingerprint(replaced));

    const again = await rejection(initNitrokeyHsm({ config: swap, stateDir, env: {} }));
    expect(again.code).toBe("hsm.key_mismatch");
    expect(again.message).toMatch(/^not re-pinning/);
    expect(again.hint).toMatch(/--force/);
    // nothing changed: the cache still holds the pinned key, store still works
    expect(await readFile(join(stateDir, PUBLIC_KEY_CACHE_FILE))).toEqual(Buffer.from(original));
    await sealForStore(secret, { config: swap, stateDir });

    const forced = await initNitrokeyHsm({ config: swap, stateDir, env: {}, force: true });
    expect(forced).toMatchObject({
      changed: true,
      previous: publicKeyFingerprint(original),
      fingerprint: publicKeyFingerprint(replaced),
    });
    const p = provider(swap);
    await p.open();
    await p.close();
  });

  it("store refuses without init and refuses a substituted public key cache", async () => {
    const missing = await rejection(
      sealForStore(secret, { config: token.nitrokeyhsm(), stateDir }),
    );
    expect(missing.code).toBe("nitrokeyhsm.not_initialized");
    expect(missing.hint).toMatch(/psi nitrokeyhsm init/);

    await initNitrokeyHsm({ config: token.nitrokeyhsm(), stateDir, env: {} });
    const vectorKey = readFileSync(join(VECTORS, "hsm-public-key.der"));
    await writeFile(join(stateDir, PUBLIC_KEY_CACHE_FILE), vectorKey);
    const substituted = await rejection(
      sealForStore(secret, { config: token.nitrokeyhsm(), stateDir }),
    );
    expect(substituted.code).toBe("hsm.key_mismatch");
    expect(substituted.message).toContain("public key cache");

    const empty = await rejection(
      sealForStore(new Uint8Array(0), { config: token.nitrokeyhsm(), stateDir }),
    );
    expect(empty.code).toBe("nitrokeyhsm.empty_value");
  });

  it("preflight passes every step after init, and fails only the pin step before", async () => {
    const before = await preflightNitrokeyHsm({ config: token.nitrokeyhsm(), stateDir, env: {} });
    expect(before.ok).toBe(false);
    expect(before.steps.filter((s) => s.status !== "ok").map((s) => s.id)).toEqual(["pin"]);
    expect(before.steps.find((s) => s.id === "pin")?.fix).toMatch(/psi nitrokeyhsm init/);
    expect(before.slots.length).toBeGreaterThan(token.slot);

    await initNitrokeyHsm({ config: token.nitrokeyhsm(), stateDir, env: {} });
    const after = await preflightNitrokeyHsm({ config: token.nitrokeyhsm(), stateDir, env: {} });
    expect(after.steps.map((s) => [s.id, s.status])).toEqual([
      ["module_file", "ok"],
      ["module_load", "ok"],
      ["token", "ok"],
      ["pin_source", "ok"],
      ["login", "ok"],
      ["key", "ok"],
      ["public_key", "ok"],
      ["oaep", "ok"],
      ["pin", "ok"],
    ]);
    expect(after.ok).toBe(true);
    expect(after.steps.find((s) => s.id === "oaep")?.detail).toMatch(/RSA-OAEP-SHA256/);
  });

  it("status shows token, key, pin and counts only nitrokeyhsm mappings", async () => {
    await initNitrokeyHsm({ config: token.nitrokeyhsm(), stateDir, env: {} });
    const { bytes } = await sealForStore(secret, { config: token.nitrokeyhsm(), stateDir });
    await writeFile(join(stateDir, "a1b2c3"), bytes, { mode: 0o600 });
    await writeFile(join(stateDir, "d4e5f6"), bytes, { mode: 0o600 });
    await writeFile(
      join(stateDir, "0badf00d"),
      '{"provider": "infisical", "project": "p", "path": "/", "key": "K"}',
    );
    await writeFile(join(stateDir, "cache.enc"), "PSIC");
    const status = await nitrokeyHsmStatus({ config: token.nitrokeyhsm(), stateDir, env: {} });
    expect(status).toMatchObject({
      pin: "matching",
      tokenError: null,
      oaepHash: "sha256",
      pinSource: "providers.nitrokeyhsm.pin",
      mappings: { nitrokeyhsm: 2, total: 3, unreadable: 0 },
    });
    // Read as lookups read them: a symlink (even to a nitrokeyhsm mapping), a JSON object
    // without a provider and a directory are not mappings.
    const odd = join(stateDir, "..", "odd-state");
    await mkdir(join(odd, "cafe01"), { recursive: true });
    await writeFile(join(odd, "cafe02"), bytes, { mode: 0o600 });
    await symlink(join(odd, "cafe02"), join(odd, "cafe03"));
    await writeFile(join(odd, "cafe04"), '{"project": "p"}');
    expect(await countNitrokeyHsmMappings(odd)).toEqual({
      nitrokeyhsm: 1,
      total: 4,
      unreadable: 3,
    });
    expect(status.tokenFingerprint).toBe(status.pinnedFingerprint);
    expect(status.token?.keyLabel).toBe("podman-secrets");
    expect(await countNitrokeyHsmMappings(join(stateDir, "absent"))).toEqual({
      nitrokeyhsm: 0,
      total: 0,
      unreadable: 0,
    });

    await rm(join(stateDir, PUBLIC_KEY_PIN_FILE));
    expect(
      (await nitrokeyHsmStatus({ config: token.nitrokeyhsm(), stateDir, env: {}, offline: true }))
        .pin,
    ).toBe("not pinned");
  });
});
