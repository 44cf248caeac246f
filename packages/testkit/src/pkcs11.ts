/**
 * Real PKCS#11 tokens for tests (TESTING.md "PKCS#11: two real tokens"):
 *
 * - {@link createSoftHsmToken}: SoftHSM 2.6 — login, slots and key lookup; OAEP with SHA-1 only.
 * - {@link createNssToken}: NSS softokn — OAEP with SHA-256 (PSI's default), empty PIN.
 *
 * Both put an RSA-2048 key pair (CKA_ID 02, label "podman-secrets", token objects) on the
 * token unless `key: false`.
 *
 * SoftHSM reads `SOFTHSM2_CONF` from the *process* environment in C_Initialize, and
 * graphene loads the module into the test process itself: {@link createSoftHsmToken}
 * therefore sets `process.env.SOFTHSM2_CONF` (restored by `cleanup`), and every key
 * operation here sets it again before loading the module. Use one SoftHSM token per test
 * file (vitest runs each file in its own process), or call `activate()` before opening a
 * different one. Child processes (the CLI) need `token.env` in their environment.
 *
 * The helpers load, initialize and *finalize* the module for each key operation: never
 * call them while code under test holds a session on the same module (close it first).
 */
import { execFile } from "node:child_process";
import { createPrivateKey, createPublicKey } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, rm, writeFile } from "node:fs/promises";
import { delimiter, join } from "node:path";
import { promisify } from "node:util";
import type { NitrokeyHsmConfig } from "@psi/core";
import graphene from "graphene-pk11";
import { requireTool } from "./tmp.js";

const run = promisify(execFile);

/** Where Debian's softhsm2 package puts the module. */
export const SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so";

/** NSS softokn for this machine's architecture (Debian's libnss3). */
export const NSS_MODULE =
  [
    "/usr/lib/x86_64-linux-gnu/libsoftokn3.so",
    "/usr/lib/aarch64-linux-gnu/libsoftokn3.so",
    "/usr/lib64/libsoftokn3.so",
    "/usr/lib/libsoftokn3.so",
  ].find((path) => existsSync(path)) ?? "/usr/lib/x86_64-linux-gnu/libsoftokn3.so";

/** The key every test token gets by default (SPEC §2 defaults). */
export const TEST_KEY_ID = "02";
export const TEST_KEY_LABEL = "podman-secrets";

/** Which key objects an operation targets. */
export interface TestKeyOptions {
  /** Hex CKA_ID; default "02". */
  id?: string;
  /** CKA_LABEL; default "podman-secrets". */
  label?: string;
  /** Destroy the objects with this id or label first (simulates a swapped token). */
  replace?: boolean;
}

/** A real token set up for a test, and how to reach it. */
export interface TestToken {
  kind: "softhsm" | "nss";
  modulePath: string;
  /** C_Initialize parameters (NSS configdir); undefined for SoftHSM. */
  initParams?: string;
  /** Index among slots with a token present: what `providers.nitrokeyhsm.slot` means. */
  slot: number;
  pin: string;
  /** Environment a child process needs to see this token (SOFTHSM2_CONF). */
  env: Record<string, string>;
  /** The OAEP digest this token supports. */
  oaepHash: "sha256" | "sha1";
  keyId: string;
  keyLabel: string;
  /** SPKI DER of the key pair made at creation (undefined with `key: false`). */
  publicKeyDer: Uint8Array | undefined;
  /** A `providers.nitrokeyhsm` block pointing at this token. */
  nitrokeyhsm(overrides?: Partial<NitrokeyHsmConfig>): NitrokeyHsmConfig;
  /** Makes this token the one the process sees (sets SOFTHSM2_CONF; no-op for NSS). */
  activate(): void;
  /** Generates an RSA-2048 pair on the token; returns its SPKI DER. */
  generateKeyPair(options?: TestKeyOptions): Promise<Uint8Array>;
  /** Imports an RSA private key (PEM) and its public half; returns the SPKI DER. */
  importPrivateKey(pem: string, options?: TestKeyOptions): Promise<Uint8Array>;
  /** Destroys the key objects with this id and/or label; returns how many went. */
  destroyKeys(options: { id?: string; label?: string }): Promise<number>;
  /** Runs `fn` in a logged-in RW session of its own (module initialized and finalized around it). */
  withSession<T>(fn: (session: graphene.Session) => T): T;
  /** Restores SOFTHSM2_CONF and removes the token files. */
  cleanup(): Promise<void>;
}

function commandExists(name: string): boolean {
  return (process.env["PATH"] ?? "")
    .split(delimiter)
    .some((dir) => dir !== "" && existsSync(join(dir, name)));
}

/** True when the SoftHSM test must be skipped (loud locally, a failure on CI): see `requireTool`. */
export function requireSoftHsm(): boolean {
  return requireTool(
    existsSync(SOFTHSM_MODULE) && commandExists("softhsm2-util"),
    "SoftHSM2 (softhsm2-util, libsofthsm2.so)",
    "softhsm2",
  );
}

/** True when the NSS softokn test must be skipped (loud locally, a failure on CI). */
export function requireNss(): boolean {
  return requireTool(
    existsSync(NSS_MODULE) && commandExists("certutil"),
    "NSS softokn (certutil, libsoftokn3.so)",
    "libnss3-tools",
  );
}

interface TokenAccess {
  modulePath: string;
  initParams: string | undefined;
  env: Record<string, string>;
}

function withModule<T>(access: TokenAccess, fn: (module: graphene.Module) => T): T {
  Object.assign(process.env, access.env);
  const module = graphene.Module.load(access.modulePath, "psi-testkit");
  try {
    module.initialize(
      access.initParams === undefined ? undefined : { libraryParameters: access.initParams },
    );
    try {
      return fn(module);
    } finally {
      module.finalize();
    }
  } finally {
    module.close();
  }
}

function sessionOn<T>(
  access: TokenAccess,
  slot: number,
  pin: string,
  fn: (session: graphene.Session) => T,
): T {
  return withModule(access, (module) => {
    const session = module
      .getSlots(slot, true)
      .open(graphene.SessionFlag.SERIAL_SESSION | graphene.SessionFlag.RW_SESSION);
    try {
      try {
        session.login(pin, graphene.UserType.USER);
      } catch (error) {
        if (!/CKR_USER_ALREADY_LOGGED_IN/.test(String(error))) throw error;
      }
      return fn(session);
    } finally {
      session.close();
    }
  });
}

function spki(modulus: Buffer, publicExponent: Buffer): Uint8Array {
  const jwk = {
    kty: "RSA",
    n: modulus.toString("base64url"),
    e: publicExponent.toString("base64url"),
  };
  return new Uint8Array(
    createPublicKey({ key: jwk, format: "jwk" }).export({ type: "spki", format: "der" }),
  );
}

function destroy(
  session: graphene.Session,
  id: string | undefined,
  label: string | undefined,
): number {
  let count = 0;
  if (id !== undefined) count += session.destroy({ id: Buffer.from(id, "hex") });
  if (label !== undefined) count += session.destroy({ label });
  return count;
}

function makeToken(
  base: Omit<
    TestToken,
    | "nitrokeyhsm"
    | "activate"
    | "generateKeyPair"
    | "importPrivateKey"
    | "destroyKeys"
    | "withSession"
    | "cleanup"
    | "publicKeyDer"
  >,
  removeFiles: () => Promise<void>,
): TestToken {
  const previousConf = process.env["SOFTHSM2_CONF"];
  const access: TokenAccess = {
    modulePath: base.modulePath,
    initParams: base.initParams,
    env: base.env,
  };
  const withSession = <T>(fn: (session: graphene.Session) => T): T =>
    sessionOn(access, base.slot, base.pin, fn);
  const keyTarget = (options: TestKeyOptions) => ({
    id: Buffer.from(options.id ?? TEST_KEY_ID, "hex"),
    label: options.label ?? TEST_KEY_LABEL,
  });
  const token: TestToken = {
    ...base,
    publicKeyDer: undefined,
    nitrokeyhsm: (overrides = {}) => ({
      pkcs11_module: base.modulePath,
      slot: base.slot,
      key_label: base.keyLabel,
      key_id: base.keyId,
      pin: base.pin,
      public_key_cache: null,
      pcscd_volume: "pcscd-socket",
      oaep_hash: base.oaepHash,
      init_params: base.initParams ?? null,
      ...overrides,
    }),
    activate: () => {
      Object.assign(process.env, base.env);
    },
    withSession,
    async generateKeyPair(options = {}) {
      const { id, label } = keyTarget(options);
      return withSession((session) => {
        if (options.replace) destroy(session, id.toString("hex"), label);
        const pair = session.generateKeyPair(
          graphene.KeyGenMechanism.RSA,
          {
            keyType: graphene.KeyType.RSA,
            modulusBits: 2048,
            publicExponent: Buffer.from([1, 0, 1]),
            token: true,
            encrypt: true,
            verify: true,
            wrap: true,
            id,
            label,
          },
          {
            keyType: graphene.KeyType.RSA,
            token: true,
            private: true,
            sensitive: true,
            extractable: false,
            decrypt: true,
            sign: true,
            unwrap: true,
            id,
            label,
          },
        );
        const { modulus, publicExponent } = pair.publicKey.getAttribute({
          modulus: null,
          publicExponent: null,
        });
        return spki(modulus as Buffer, publicExponent as Buffer);
      });
    },
    async importPrivateKey(pem, options = {}) {
      const { id, label } = keyTarget(options);
      const jwk = createPrivateKey(pem).export({ format: "jwk" });
      const part = (value: string | undefined) => Buffer.from(value ?? "", "base64url");
      return withSession((session) => {
        if (options.replace) destroy(session, id.toString("hex"), label);
        session.create({
          class: graphene.ObjectClass.PRIVATE_KEY,
          keyType: graphene.KeyType.RSA,
          token: true,
          private: true,
          sensitive: true,
          decrypt: true,
          unwrap: true,
          id,
          label,
          modulus: part(jwk.n),
          publicExponent: part(jwk.e),
          privateExponent: part(jwk.d),
          prime1: part(jwk.p),
          prime2: part(jwk.q),
          exp1: part(jwk.dp),
          exp2: part(jwk.dq),
          coefficient: part(jwk.qi),
        });
        session.create({
          class: graphene.ObjectClass.PUBLIC_KEY,
          keyType: graphene.KeyType.RSA,
          token: true,
          encrypt: true,
          wrap: true,
          id,
          label,
          modulus: part(jwk.n),
          publicExponent: part(jwk.e),
        });
        return spki(part(jwk.n), part(jwk.e));
      });
    },
    async destroyKeys(options) {
      return withSession((session) => destroy(session, options.id, options.label));
    },
    async cleanup() {
      if (base.kind === "softhsm" && process.env["SOFTHSM2_CONF"] === base.env["SOFTHSM2_CONF"]) {
        if (previousConf === undefined) delete process.env["SOFTHSM2_CONF"];
        else process.env["SOFTHSM2_CONF"] = previousConf;
      }
      await removeFiles();
    },
  };
  return token;
}

/** Options of the token factories. */
export interface CreateTokenOptions {
  /** Generate the default key pair (id 02, label podman-secrets); default true. */
  key?: boolean;
}

/**
 * A fresh SoftHSM 2 token under `dir` (label "psi", user PIN 123456, SO PIN 12345678),
 * found by label among the slots with a token. Sets `process.env.SOFTHSM2_CONF`.
 */
export async function createSoftHsmToken(
  dir: string,
  options: CreateTokenOptions & { pin?: string; label?: string } = {},
): Promise<TestToken> {
  const pin = options.pin ?? "123456";
  const tokenLabel = options.label ?? "psi";
  const tokens = join(dir, "softhsm-tokens");
  const conf = join(dir, "softhsm2.conf");
  await mkdir(tokens, { recursive: true });
  await writeFile(
    conf,
    `directories.tokendir = ${tokens}\nobjectstore.backend = file\nlog.level = ERROR\n`,
  );
  const env = { SOFTHSM2_CONF: conf };
  await run(
    "softhsm2-util",
    ["--init-token", "--free", "--label", tokenLabel, "--pin", pin, "--so-pin", "12345678"],
    { env: { ...process.env, ...env } },
  );
  const access: TokenAccess = { modulePath: SOFTHSM_MODULE, initParams: undefined, env };
  // init moves the token to a new slot id; `slot` is its index among slots with a token
  const slot = withModule(access, (module) => {
    const slots = module.getSlots(true);
    for (let i = 0; i < slots.length; i++) {
      if (slots.items(i).getToken().label === tokenLabel) return i;
    }
    throw new Error(`SoftHSM token "${tokenLabel}" not found after softhsm2-util --init-token`);
  });
  const token = makeToken(
    {
      kind: "softhsm",
      modulePath: SOFTHSM_MODULE,
      slot,
      pin,
      env,
      oaepHash: "sha1",
      keyId: TEST_KEY_ID,
      keyLabel: TEST_KEY_LABEL,
    },
    async () => {
      await rm(tokens, { recursive: true, force: true });
      await rm(conf, { force: true });
    },
  );
  if (options.key !== false) token.publicKeyDer = await token.generateKeyPair();
  return token;
}

/**
 * A fresh NSS softokn database under `dir` (empty password unless `password`), used as a
 * PKCS#11 token through C_Initialize parameters; the key slot is the last slot.
 */
export async function createNssToken(
  dir: string,
  options: CreateTokenOptions & { password?: string } = {},
): Promise<TestToken> {
  const db = join(dir, "nssdb");
  await mkdir(db, { recursive: true });
  if (options.password) {
    const passwordFile = join(dir, "nss-password");
    await writeFile(passwordFile, `${options.password}\n`, { mode: 0o600 });
    await run("certutil", ["-N", "-d", `sql:${db}`, "-f", passwordFile]);
    await rm(passwordFile);
  } else {
    await run("certutil", ["-N", "-d", `sql:${db}`, "--empty-password"]);
  }
  const initParams = `configdir='sql:${db}' certPrefix='' keyPrefix='' secmod='secmod.db' flags=`;
  const access: TokenAccess = { modulePath: NSS_MODULE, initParams, env: {} };
  const slot = withModule(access, (module) => module.getSlots(true).length - 1);
  const token = makeToken(
    {
      kind: "nss",
      modulePath: NSS_MODULE,
      initParams,
      slot,
      pin: options.password ?? "",
      env: {},
      oaepHash: "sha256",
      keyId: TEST_KEY_ID,
      keyLabel: TEST_KEY_LABEL,
    },
    () => rm(db, { recursive: true, force: true }),
  );
  if (options.key !== false) token.publicKeyDer = await token.generateKeyPair();
  return token;
}
