import { createCipheriv } from "node:crypto";
import { readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { isPsiError, type PsiError } from "@psi/core";
import { decodeCacheFile, encodeCacheFile, readHeader } from "@psi/envelope";
import { requireTool, tempDir } from "@psi/testkit/tmp";
import {
  decryptCredential,
  hostKeyEnv,
  type Swtpm,
  startSwtpm,
  TPM_PACKAGES,
  tpmToolsAvailable,
  writeCredential,
} from "@psi/testkit/tpm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createTpmCacheBackend,
  initTpmKey,
  readTpmKey,
  TPM_TAG,
  tpmCacheBackend,
  tpmCacheBackendFromKey,
} from "../src/index.js";

const vectors = join(import.meta.dirname, "..", "..", "..", "vectors");
const skip = requireTool(tpmToolsAvailable(), "swtpm, systemd-creds and tpm2-tools", TPM_PACKAGES);

async function caught(promise: Promise<unknown>): Promise<PsiError> {
  try {
    await promise;
  } catch (error) {
    if (isPsiError(error)) return error;
    throw error;
  }
  throw new Error("expected a PsiError");
}

describe.skipIf(skip)("tpm cache backend on swtpm + systemd-creds", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let tpm: Swtpm;
  const env = { PATH: process.env["PATH"] ?? "/usr/bin:/bin" };

  beforeAll(async () => {
    ({ path: dir, cleanup } = await tempDir("psi-cache-tpm-"));
    tpm = await startSwtpm(dir);
  });
  afterAll(async () => {
    await tpm?.stop();
    await cleanup?.();
  });

  it("seals a fresh key with the TPM: the file is 0600, not the key, and decrypts to it", async () => {
    const configDir = join(dir, "seal", "etc-psi");
    const result = await initTpmKey({ configDir, tpm2Device: tpm.device, env });
    expect(result.keyPath).toBe(join(configDir, "cache.key"));
    expect(result.withKey).toBe("tpm2");
    expect(result.key).toHaveLength(32);
    const sealed = await readFile(result.keyPath);
    expect((await stat(result.keyPath)).mode & 0o777).toBe(0o600);
    expect(sealed.length).toBeGreaterThan(32);
    expect(sealed.includes(Buffer.from(result.key))).toBe(false);
    expect(await readdir(configDir)).toEqual(["cache.key"]); // no temp file left behind

    const credsDir = await decryptCredential({
      credential: result.keyPath,
      credsDir: join(dir, "seal", "creds"),
      tpm,
    });
    expect(
      Buffer.compare(await readFile(join(credsDir, "psi-cache-key")), Buffer.from(result.key)),
    ).toBe(0);
    // A sealed credential is bound to its TPM: without the swtpm it does not decrypt.
    await expect(
      decryptCredential({
        credential: result.keyPath,
        credsDir: join(dir, "seal", "creds2"),
        env: { SYSTEMD_TPM2_DEVICE: "swtpm:port=1" },
      }),
    ).rejects.toThrow(/systemd-creds decrypt failed/);
  });

  it("the decrypted credential opens as the backend; a cache saved with it loads again", async () => {
    const configDir = join(dir, "roundtrip");
    const { keyPath } = await initTpmKey({ configDir, tpm2Device: tpm.device, env });
    const credsDir = await decryptCredential({
      credential: keyPath,
      credsDir: join(configDir, "creds"),
      tpm,
    });
    const context = { env: { CREDENTIALS_DIRECTORY: credsDir }, configDir };

    const writer = createTpmCacheBackend(context);
    await writer.open();
    const entries = new Map([["ab".repeat(32), Buffer.from("db.internal")]]);
    const hmacKey = Buffer.alloc(32, 7);
    const file = await encodeCacheFile({ hmacKey, entries, writtenAt: 1_700_000_000 }, writer);
    await writer.close();
    expect(readHeader(file)).toEqual({ version: 1, tag: TPM_TAG });

    const reader = createTpmCacheBackend(context);
    await reader.open();
    const loaded = await decodeCacheFile(file, reader);
    await reader.close();
    expect(loaded.writtenAt).toBe(1_700_000_000);
    expect(Buffer.from(loaded.hmacKey).equals(hmacKey)).toBe(true);
    expect(Buffer.from(loaded.entries.get("ab".repeat(32)) ?? []).toString()).toBe("db.internal");
  });

  it("is what the CLI wiring builds from a PsiContext (env from the context, not process.env)", async () => {
    const credsDir = join(dir, "wiring-creds");
    await writeCredential(credsDir, "psi-cache-key", Buffer.alloc(32, 1));
    const context = {
      env: { CREDENTIALS_DIRECTORY: credsDir },
      paths: { configDir: "/etc/psi" },
    } as unknown as Parameters<typeof tpmCacheBackend>[0];
    const backend = tpmCacheBackend(context);
    expect(backend.name).toBe("tpm");
    expect(backend.tag).toBe(0x01);
    await backend.open();
    const payload = await backend.encrypt(Buffer.from("{}"));
    expect(Buffer.from(await backend.decrypt(payload)).toString()).toBe("{}");
    await backend.close();
    await expect(backend.encrypt(Buffer.from("{}"))).rejects.toThrow(/before open/);

    const saved = process.env["CREDENTIALS_DIRECTORY"];
    process.env["CREDENTIALS_DIRECTORY"] = credsDir;
    try {
      const error = await caught(tpmCacheBackend({ ...context, env: {} }).open());
      expect(error.code).toBe("cache.tpm_no_credentials");
    } finally {
      if (saved === undefined) delete process.env["CREDENTIALS_DIRECTORY"];
      else process.env["CREDENTIALS_DIRECTORY"] = saved;
    }
  });

  describe("errors name the unit directive that fixes them", () => {
    const configDir = "/etc/psi";
    const directive = "LoadCredentialEncrypted=psi-cache-key:/etc/psi/cache.key";

    it("no CREDENTIALS_DIRECTORY", async () => {
      const error = await caught(readTpmKey({ env: {}, configDir }));
      expect(error.code).toBe("cache.tpm_no_credentials");
      expect(error.message).toMatch(/CREDENTIALS_DIRECTORY is not set/);
      expect(error.hint).toContain(directive);
      expect(error.hint).toContain("systemd-creds decrypt --name=psi-cache-key /etc/psi/cache.key");
    });

    it("no psi-cache-key credential", async () => {
      const credsDir = join(dir, "empty-creds");
      await writeCredential(credsDir, "other", Buffer.alloc(32));
      const error = await caught(
        readTpmKey({ env: { CREDENTIALS_DIRECTORY: credsDir }, configDir }),
      );
      expect(error.code).toBe("cache.tpm_key_missing");
      expect(error.message).toContain(join(credsDir, "psi-cache-key"));
      expect(error.hint).toContain(directive);
      expect(error.hint).toContain("psi cache init --backend tpm");
    });

    it.each([0, 31, 33, 584])("a %i-byte credential", async (size) => {
      const credsDir = join(dir, `size-${size}`);
      await writeCredential(credsDir, "psi-cache-key", Buffer.alloc(size, 0x41));
      const error = await caught(
        readTpmKey({ env: { CREDENTIALS_DIRECTORY: credsDir }, configDir }),
      );
      expect(error.code).toBe("cache.tpm_key_invalid");
      expect(error.message).toContain(`is ${size} bytes, expected a 32-byte key`);
      expect(error.message).not.toContain("AAAA");
      expect(error.hint).toContain(directive);
    });
  });

  it("refuses to replace an existing key without force; a failed forced run leaves it intact", async () => {
    const configDir = join(dir, "clobber");
    const first = await initTpmKey({ configDir, tpm2Device: tpm.device, env });
    const before = await readFile(first.keyPath);

    const exists = await caught(initTpmKey({ configDir, tpm2Device: tpm.device, env }));
    expect(exists.code).toBe("cache.key_exists");
    expect(exists.hint).toContain("--force");
    expect((await readFile(first.keyPath)).equals(before)).toBe(true);

    const failed = await caught(
      initTpmKey({ configDir, tpm2Device: "swtpm:port=1", env, force: true }),
    );
    expect(failed.code).toBe("cache.tpm_seal_failed");
    expect(failed.message).toMatch(
      /systemd-creds encrypt failed \(exit \d+\): .*(TCTI|tcti|swtpm)/s,
    );
    expect(failed.hint).toContain("--with-key host");
    expect((await readFile(first.keyPath)).equals(before)).toBe(true);
    expect(await readdir(configDir)).toEqual(["cache.key"]);

    const second = await initTpmKey({ configDir, tpm2Device: tpm.device, env, force: true });
    expect((await readFile(second.keyPath)).equals(before)).toBe(false);
    expect((await stat(second.keyPath)).mode & 0o777).toBe(0o600);
  });

  it("says so when systemd-creds is missing", async () => {
    const error = await caught(
      initTpmKey({ configDir: join(dir, "notool"), env: { PATH: join(dir, "no-bin") } }),
    );
    expect(error.code).toBe("cache.tpm_tool_missing");
    expect(error.message).toContain("systemd-creds was not found");
    expect(error.hint).toMatch(/systemd/);
  });

  it.each(["host", "tpm2+host"] as const)(
    "--with-key %s seals with a host key (SYSTEMD_CREDENTIAL_SECRET)",
    async (withKey) => {
      const base = join(dir, `with-${withKey.replace("+", "-")}`);
      const hostEnv = { ...env, ...hostKeyEnv(base) };
      const { key, keyPath } = await initTpmKey({
        keyPath: join(base, "cache.key"),
        withKey,
        env: hostEnv,
        ...(withKey === "host" ? {} : { tpm2Device: tpm.device }),
      });
      const credsDir = await decryptCredential({
        credential: keyPath,
        credsDir: join(base, "creds"),
        env: hostKeyEnv(base),
        ...(withKey === "host" ? {} : { tpm }),
      });
      expect(
        Buffer.compare(await readFile(join(credsDir, "psi-cache-key")), Buffer.from(key)),
      ).toBe(0);
      // Another host key cannot open it.
      await expect(
        decryptCredential({
          credential: keyPath,
          credsDir: join(base, "creds-other"),
          tpm,
          env: hostKeyEnv(join(base, "other")),
        }),
      ).rejects.toThrow(/systemd-creds decrypt failed/);
    },
  );

  describe("compatibility", () => {
    it("the shared vector tpm-cache.enc decrypts with its known key through the backend", async () => {
      const manifest = JSON.parse(await readFile(join(vectors, "manifest.json"), "utf8")) as {
        tpm_key_hex: string;
        hmac_key_b64: string;
        written_at: number;
        entries: { cache_key: string; value_b64: string }[];
      };
      const credsDir = join(dir, "vector-creds");
      await writeCredential(credsDir, "psi-cache-key", Buffer.from(manifest.tpm_key_hex, "hex"));
      const backend = createTpmCacheBackend({
        env: { CREDENTIALS_DIRECTORY: credsDir },
        configDir: "/etc/psi",
      });
      await backend.open();
      const file = await readFile(join(vectors, "tpm-cache.enc"));
      const cache = await decodeCacheFile(file, backend);
      expect(cache.legacy).toBe(false);
      expect(cache.writtenAt).toBe(manifest.written_at);
      expect(Buffer.from(cache.hmacKey).toString("base64")).toBe(manifest.hmac_key_b64);
      expect(
        new Map([...cache.entries].map(([k, v]) => [k, Buffer.from(v).toString("base64")])),
      ).toEqual(new Map(manifest.entries.map((e) => [e.cache_key, e.value_b64])));

      // Written again with the vector's own nonce, the bytes are the reference's, exactly.
      const nonce = file.subarray(6, 18);
      const pinned = tpmCacheBackendFromKey(Buffer.from(manifest.tpm_key_hex, "hex"), {
        randomBytes: () => Buffer.from(nonce),
      });
      await pinned.open();
      const again = await encodeCacheFile(cache, pinned);
      expect(Buffer.from(again).equals(file)).toBe(true);
      await backend.close();
    });

    it("a fixed key and nonce give the expected bytes", async () => {
      const key = Buffer.from([...Array(32).keys()]);
      const nonce = Buffer.alloc(12, 0xa5);
      const backend = tpmCacheBackendFromKey(key, { randomBytes: () => nonce });
      await backend.open();
      const hmacKey = Buffer.alloc(32, 0x11);
      const entries = new Map([
        ["ff".repeat(32), Buffer.from("second")],
        ["00".repeat(32), Buffer.from([0, 1, 2, 255])],
      ]);
      const file = await encodeCacheFile({ hmacKey, entries, writtenAt: 1775626954 }, backend);

      // Independently: the payload JSON as the reference writes it, sealed with node:crypto.
      const json =
        `{"entries":{"${"00".repeat(32)}":"AAEC/w==","${"ff".repeat(32)}":"c2Vjb25k"},` +
        `"hmac_key":"${hmacKey.toString("base64")}","version":2,"written_at":1775626954}`;
      const cipher = createCipheriv("aes-256-gcm", key, nonce);
      const body = Buffer.concat([cipher.update(json, "utf8"), cipher.final()]);
      const expected = Buffer.concat([
        Buffer.from("PSIC"),
        Buffer.from([1, 1]),
        nonce,
        body,
        cipher.getAuthTag(),
      ]);
      expect(Buffer.from(file).toString("hex")).toBe(expected.toString("hex"));
    });
  });
});
