import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { mkdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { isPsiError, type PsiError } from "@psi/core";
import { decodeCacheFile, encodeCacheFile, openHybrid, readHeader, TAG_HSM } from "@psi/envelope";
import {
  createNssToken,
  createSoftHsmToken,
  requireNss,
  requireSoftHsm,
  type TestToken,
} from "@psi/testkit/pkcs11";
import { tempDir } from "@psi/testkit/tmp";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  hsmCacheBackend,
  openNitrokeyHsm,
  PUBLIC_KEY_CACHE_FILE,
  PUBLIC_KEY_PIN_FILE,
  pinPublicKey,
  publicKeyFingerprint,
  readPublicKeyPin,
  verifyPublicKeyPin,
} from "../src/index.js";
import { hsmContext } from "./context.js";

// The backend on both real tokens: NSS softokn does RSA-OAEP with SHA-256 (PSI's default)
// and also decrypts the shared vectors; SoftHSM 2.6 covers oaep_hash: sha1.
const TOKENS = [
  { name: "NSS softokn (OAEP-SHA256)", skip: requireNss(), create: createNssToken, vectors: true },
  {
    name: "SoftHSM 2 (OAEP-SHA1)",
    skip: requireSoftHsm(),
    create: createSoftHsmToken,
    vectors: false,
  },
];
const VECTORS = resolve(import.meta.dirname, "../../../vectors");

interface Manifest {
  hmac_key_b64: string;
  written_at: number;
  entries: { cache_key: string; value_b64: string }[];
  nitrokeyhsm_plaintext_b64: string;
}

async function rejection(promise: Promise<unknown>): Promise<PsiError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (isPsiError(error)) return error;
  throw new Error(`expected a PsiError, got ${String(error)}`);
}

for (const kind of TOKENS) {
  describe.skipIf(kind.skip)(`hsm cache backend on ${kind.name}`, () => {
    let dir: { path: string; cleanup: () => Promise<void> };
    let token: TestToken;
    let stateDir: string;

    beforeAll(async () => {
      dir = await tempDir("psi-hsm-nss-");
      token = await kind.create(dir.path);
      // the vector key (its blobs are OAEP-SHA256) as a second key pair on the same token
      if (kind.vectors)
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
    afterEach(async () => {
      await rm(stateDir, { recursive: true, force: true });
    });

    it("saves a cache through the backend and loads it back through the token", async () => {
      const context = hsmContext(token.nitrokeyhsm(), stateDir);
      const backend = hsmCacheBackend(context);
      expect(backend).toMatchObject({ name: "hsm", tag: 0x02 });
      await backend.open();
      const entries = new Map([
        ["a".repeat(64), new TextEncoder().encode("db.internal")],
        ["b".repeat(64), new Uint8Array([0, 1, 2, 255])],
      ]);
      const hmacKey = randomBytes(32);
      const file = await encodeCacheFile({ hmacKey, entries, writtenAt: 1775626954 }, backend);
      await backend.close();
      expect(readHeader(file).tag).toBe(TAG_HSM);

      const reopened = hsmCacheBackend(hsmContext(token.nitrokeyhsm(), stateDir));
      await reopened.open();
      try {
        const loaded = await decodeCacheFile(file, reopened);
        expect(Buffer.from(loaded.hmacKey)).toEqual(hmacKey);
        expect(loaded.writtenAt).toBe(1775626954);
        expect([...loaded.entries.keys()]).toEqual([...entries.keys()]);
        expect(Buffer.from(loaded.entries.get("b".repeat(64))!)).toEqual(
          Buffer.from([0, 1, 2, 255]),
        );
      } finally {
        await reopened.close();
      }
    });

    it("exports the public key to <state_dir>/nitrokeyhsm-pubkey.der, or the configured path", async () => {
      const backend = hsmCacheBackend(hsmContext(token.nitrokeyhsm(), stateDir));
      await backend.open();
      await backend.close();
      const cached = await readFile(join(stateDir, PUBLIC_KEY_CACHE_FILE));
      expect(cached).toEqual(Buffer.from(token.publicKeyDer!));

      const custom = join(stateDir, "elsewhere", "hsm.der");
      const other = hsmCacheBackend(
        hsmContext(token.nitrokeyhsm({ public_key_cache: custom }), stateDir),
      );
      await other.open();
      await other.close();
      expect(await readFile(custom)).toEqual(Buffer.from(token.publicKeyDer!));
    });

    it("encrypts with the public key alone once open", async () => {
      const backend = hsmCacheBackend(hsmContext(token.nitrokeyhsm(), stateDir));
      const early = await rejection(
        Promise.resolve().then(() => backend.encrypt(new Uint8Array(1))),
      );
      expect(early.code).toBe("cache.backend_not_open");
      await backend.open();
      try {
        const payload = await backend.encrypt(new TextEncoder().encode("{}"));
        expect(payload.length).toBeGreaterThan(2 + 256 + 12 + 16);
        expect(new TextDecoder().decode(await backend.decrypt(payload))).toBe("{}");
      } finally {
        await backend.close();
      }
    });

    // only NSS: the vector blobs are OAEP-SHA256, which SoftHSM 2.6 cannot unwrap
    if (kind.vectors)
      it("decrypts the shared vectors hsm-cache.enc and nitrokeyhsm-mapping.json through the token", async () => {
        const manifest = JSON.parse(
          readFileSync(join(VECTORS, "manifest.json"), "utf8"),
        ) as Manifest;
        const config = token.nitrokeyhsm({ key_id: "03", key_label: "vector" });
        const backend = hsmCacheBackend(hsmContext(config, stateDir));
        await backend.open();
        try {
          const cache = await decodeCacheFile(
            readFileSync(join(VECTORS, "hsm-cache.enc")),
            backend,
          );
          expect(Buffer.from(cache.hmacKey).toString("base64")).toBe(manifest.hmac_key_b64);
          expect(cache.writtenAt).toBe(manifest.written_at);
          for (const entry of manifest.entries) {
            expect(Buffer.from(cache.entries.get(entry.cache_key)!).toString("base64")).toBe(
              entry.value_b64,
            );
          }
        } finally {
          await backend.close();
        }

        const hsm = await openNitrokeyHsm({ config, stateDir, env: {} });
        try {
          const mapping = JSON.parse(
            readFileSync(join(VECTORS, "nitrokeyhsm-mapping.json"), "utf8"),
          ) as {
            blob: string;
          };
          const plaintext = await openHybrid(Buffer.from(mapping.blob, "base64"), hsm.unwrap);
          expect(Buffer.from(plaintext).toString("base64")).toBe(
            manifest.nitrokeyhsm_plaintext_b64,
          );
        } finally {
          hsm.close();
        }
      });

    it("warns when no key is pinned, and not once it is", async () => {
      const context = hsmContext(token.nitrokeyhsm(), stateDir);
      const backend = hsmCacheBackend(context);
      await backend.open();
      await backend.close();
      expect(context.logger.lines.filter((l) => l.fields?.event === "hsm.unpinned")).toHaveLength(
        1,
      );

      const result = await pinPublicKey(stateDir, token.publicKeyDer!);
      expect(result).toMatchObject({
        changed: true,
        previous: null,
        fingerprint: publicKeyFingerprint(token.publicKeyDer!),
      });
      expect((await stat(result.path)).mode & 0o777).toBe(0o600);
      expect(result.path).toBe(join(stateDir, PUBLIC_KEY_PIN_FILE));
      expect(PUBLIC_KEY_PIN_FILE.startsWith(".")).toBe(true);
      expect(await readPublicKeyPin(stateDir)).toBe(result.fingerprint);

      const pinned = hsmContext(token.nitrokeyhsm(), stateDir);
      const again = hsmCacheBackend(pinned);
      await again.open();
      await again.close();
      expect(pinned.logger.lines.filter((l) => l.fields?.event === "hsm.unpinned")).toHaveLength(0);
    });

    it("refuses a corrupt pin file: tampering is an error, never an unpinned warning", async () => {
      await pinPublicKey(stateDir, token.publicKeyDer!);
      const pinFile = join(stateDir, PUBLIC_KEY_PIN_FILE);
      for (const garbage of ["", "not a fingerprint\n", `${"0".repeat(63)}\n`, "sha256:zz"]) {
        await writeFile(pinFile, garbage);
        const context = hsmContext(token.nitrokeyhsm(), stateDir);
        const backend = hsmCacheBackend(context);
        // closed whatever happens: a backend left open would hold the token for later tests
        const error = await rejection(backend.open()).finally(() => backend.close());
        expect(error.code, JSON.stringify(garbage)).toBe("hsm.pin_file_invalid");
        expect(error.message).toContain(pinFile);
        expect(error.hint).toContain("psi nitrokeyhsm init --force");
        expect(context.logger.lines.filter((l) => l.fields?.event === "hsm.unpinned")).toEqual([]);
        await expect(verifyPublicKeyPin(stateDir, token.publicKeyDer!)).rejects.toMatchObject({
          code: "hsm.pin_file_invalid",
        });
        // Nothing re-pins over it silently either; only a deliberate --force does.
        await expect(pinPublicKey(stateDir, token.publicKeyDer!)).rejects.toMatchObject({
          code: "hsm.pin_file_invalid",
        });
        expect(await readFile(pinFile, "utf8")).toBe(garbage);
      }
    });

    it("refuses a public key cache file that is not the token's key", async () => {
      // a substituted cache file would make every later save encrypt to someone else's key
      const swapped = join(stateDir, PUBLIC_KEY_CACHE_FILE);
      const vectorKey = readFileSync(join(VECTORS, "hsm-public-key.der"));
      await mkdir(stateDir, { recursive: true });
      await writeFile(swapped, vectorKey);
      const error = await rejection(
        hsmCacheBackend(hsmContext(token.nitrokeyhsm(), stateDir)).open(),
      );
      expect(error.code).toBe("hsm.public_key_cache_mismatch");
      expect(error.message).toContain(publicKeyFingerprint(vectorKey));
      expect(error.message).toContain(publicKeyFingerprint(token.publicKeyDer!));
      // unchanged: the file is evidence, not something to silently repair
      expect(await readFile(swapped)).toEqual(vectorKey);
    });

    it("says which key it looked for when neither id nor label matches", async () => {
      const config = token.nitrokeyhsm({ key_id: "99", key_label: "nope" });
      const error = await rejection(hsmCacheBackend(hsmContext(config, stateDir)).open());
      expect(error.code).toBe("hsm.key_not_found");
      expect(error.message).toContain("CKA_ID 99");
      expect(error.message).toContain('label "nope"');
    });

    it("reports a slot out of range with the number of slots that have a token", async () => {
      const error = await rejection(
        hsmCacheBackend(hsmContext(token.nitrokeyhsm({ slot: 9 }), stateDir)).open(),
      );
      expect(error.code).toBe("hsm.slot_out_of_range");
      expect(error.message).toContain("2 slot(s)");
    });

    it("reports a missing PKCS#11 module", async () => {
      const config = token.nitrokeyhsm({ pkcs11_module: join(dir.path, "missing-pkcs11.so") });
      const error = await rejection(hsmCacheBackend(hsmContext(config, stateDir)).open());
      expect(error.code).toBe("hsm.module_missing");
      expect(error.message).toContain("missing-pkcs11.so");
      expect(error.hint).toContain("pkcs11_module");
    });

    it("rejects a wrong PIN", async () => {
      const error = await rejection(
        hsmCacheBackend(hsmContext(token.nitrokeyhsm({ pin: "wrong-pin" }), stateDir)).open(),
      );
      expect(error.code).toBe("hsm.pin_incorrect");
      expect(error.message).toContain("providers.nitrokeyhsm.pin");
      expect(`${error.message} ${error.hint}`).not.toContain("wrong-pin");
    });

    it("reads the PIN from $CREDENTIALS_DIRECTORY/hsm-pin before the config", async () => {
      const credentials = join(dir.path, "creds");
      await mkdir(credentials, { recursive: true });
      await writeFile(join(credentials, "hsm-pin"), "not-the-pin\n", { mode: 0o600 });
      const error = await rejection(
        hsmCacheBackend(
          hsmContext(token.nitrokeyhsm(), stateDir, { CREDENTIALS_DIRECTORY: credentials }),
        ).open(),
      );
      expect(error.code).toBe("hsm.pin_incorrect");
      expect(error.message).toContain(join(credentials, "hsm-pin"));
    });

    // Replaces a key pair as a swapped HSM would: its own pair (id and label of its own), so
    // the token's default key, which every other test uses, is never touched.
    it("refuses a swapped key loudly, and re-pins only deliberately", async () => {
      const id = randomBytes(2).toString("hex");
      const own = { key_id: id, key_label: `swap-${id}` };
      const first = await token.generateKeyPair({ id, label: own.key_label });
      await pinPublicKey(stateDir, first);
      const original = publicKeyFingerprint(first);
      const replacement = await token.generateKeyPair({ id, label: own.key_label, replace: true });
      const swapped = publicKeyFingerprint(replacement);

      const error = await rejection(
        hsmCacheBackend(hsmContext(token.nitrokeyhsm(own), stateDir)).open(),
      );
      expect(error.code).toBe("hsm.key_mismatch");
      expect(error.message).toContain(original);
      expect(error.message).toContain(swapped);
      expect(error.hint).toContain("psi nitrokeyhsm init --force");

      const notForced = await rejection(pinPublicKey(stateDir, replacement));
      expect(notForced.code).toBe("hsm.key_mismatch");

      // what `psi nitrokeyhsm init --force` does: trust the token, rewrite the cache, re-pin
      const hsm = await openNitrokeyHsm({
        config: token.nitrokeyhsm(own),
        stateDir,
        env: {},
        trustToken: true,
      });
      hsm.close();
      const repinned = await pinPublicKey(stateDir, hsm.publicKeyDer, { force: true });
      expect(repinned).toMatchObject({ changed: true, previous: original, fingerprint: swapped });

      const backend = hsmCacheBackend(hsmContext(token.nitrokeyhsm(own), stateDir));
      await backend.open();
      await backend.close();
      expect(await readFile(join(stateDir, PUBLIC_KEY_CACHE_FILE))).toEqual(
        Buffer.from(replacement),
      );
    });
  });
}
