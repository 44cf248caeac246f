import { mkdir, readdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { readCacheFile, saveCache } from "@psi/cache";
import { createTpmCacheBackend } from "@psi/cache-tpm";
import { infisicalMappingBytes, parseMapping } from "@psi/core";
import { readHeader } from "@psi/envelope";
import { createNssToken, requireNss, type TestToken } from "@psi/testkit/pkcs11";
import { requireTool, tempDir } from "@psi/testkit/tmp";
import {
  decryptCredential,
  hostKeyEnv,
  type Swtpm,
  startSwtpm,
  TPM_PACKAGES,
  tpmToolsAvailable,
} from "@psi/testkit/tpm";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { runPsi } from "./run-psi.js";

// `psi cache init --backend tpm|hsm` on a real TPM (swtpm + systemd-creds) and a real
// PKCS#11 token (NSS softokn), then status --verify and invalidate through those backends.

// As at a terminal: `cache status` prints its table (it prints JSON when piped).
function psi(args: string[], env: Record<string, string>) {
  return runPsi(args, { env, tty: true });
}

let counter = 0;

/** A fresh host layout under `root`: config dir, state dir, env pointing at them. */
async function host(root: string, cacheBlock: string, extra = "") {
  const base = join(root, `host-${++counter}`);
  const configDir = join(base, "etc-psi");
  const stateDir = join(base, "state");
  await mkdir(configDir, { recursive: true });
  await mkdir(join(base, "home"));
  const config = join(configDir, "config.yaml");
  await writeFile(config, `state_dir: ${stateDir}\n${cacheBlock}${extra}`);
  const env: Record<string, string> = {
    HOME: join(base, "home"),
    XDG_RUNTIME_DIR: join(base, "run"),
    PSI_CONFIG: config,
    PSI_PODMAN_SOCKET: join(base, "no-podman.sock"),
    PATH: process.env["PATH"] ?? "/usr/bin:/bin",
  };
  return { base, configDir, stateDir, cachePath: join(stateDir, "cache.enc"), env };
}

it("psi cache init without --backend lists the backends and exits 1", async () => {
  const dir = await tempDir("psi-cache-init-");
  try {
    const h = await host(dir.path, "");
    const run = await psi(["cache", "init"], h.env);
    expect(run.code).toBe(1);
    for (const name of ["tpm", "hsm", "keyfile"])
      expect(run.stderr).toMatch(new RegExp(`^\\s+${name}\\s+\\S`, "m"));
  } finally {
    await dir.cleanup();
  }
});

describe.skipIf(
  requireTool(tpmToolsAvailable(), "swtpm, systemd-creds and tpm2-tools", TPM_PACKAGES),
)("psi cache init --backend tpm (swtpm + systemd-creds)", () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  let tpm: Swtpm;

  beforeAll(async () => {
    dir = await tempDir("psi-cache-tpm-cli-");
    tpm = await startSwtpm(dir.path);
  });
  afterAll(async () => {
    await tpm?.stop();
    await dir?.cleanup();
  });

  it("seals the key, writes an empty cache, and the unit's credential opens it", async () => {
    const h = await host(dir.path, "cache:\n  backend: tpm\n");
    const keyPath = join(h.configDir, "cache.key");
    const init = await psi(
      ["cache", "init", "--backend", "tpm", "--tpm2-device", tpm.device],
      h.env,
    );
    expect(init.stderr).toBe("");
    expect(init.code).toBe(0);
    expect(init.stdout).toContain(
      `wrote the tpm cache key to ${keyPath} and an empty cache to ${h.cachePath}`,
    );
    expect(init.stdout).toContain(
      `LoadCredentialEncrypted=psi-cache-key:${keyPath} (psi systemd install adds it)`,
    );
    expect(init.stdout).not.toContain("set cache.backend");
    expect((await stat(keyPath)).mode & 0o777).toBe(0o600);
    expect((await stat(h.cachePath)).mode & 0o777).toBe(0o600);
    expect(readHeader(await readFile(h.cachePath))).toEqual({ version: 1, tag: 0x01 });

    // Without the credential, --verify fails and says which directive is missing.
    const noCreds = await psi(["cache", "status", "--verify"], h.env);
    expect(noCreds.code).toBe(1);
    expect(noCreds.stdout).toMatch(/verify\s+FAILED: .*CREDENTIALS_DIRECTORY is not set/);
    expect(noCreds.stdout).toContain(`LoadCredentialEncrypted=psi-cache-key:${keyPath}`);

    // What systemd does at unit start, then PSI reads the cache with it.
    const credsDir = await decryptCredential({
      credential: keyPath,
      credsDir: join(h.base, "creds"),
      tpm,
    });
    const env = { ...h.env, CREDENTIALS_DIRECTORY: credsDir };
    const verify = await psi(["cache", "status", "--verify"], env);
    expect(verify.code).toBe(0);
    expect(verify.stdout).toContain("PSIC version 1, tag 0x01 (tpm)");
    expect(verify.stdout).toMatch(/verify\s+ok: 0 entries/);

    // invalidate decrypts and re-encrypts through the tpm backend.
    const mappings = ["ONE", "TWO"].map((key) =>
      infisicalMappingBytes({ project: "p", path: "/", key }),
    );
    const ids = ["0123456789abcdef012345671", "0123456789abcdef012345672"];
    for (const [i, id] of ids.entries()) await writeFile(join(h.stateDir, id), mappings[i]!);
    const backend = createTpmCacheBackend({
      env: { CREDENTIALS_DIRECTORY: credsDir },
      configDir: h.configDir,
    });
    await backend.open();
    await saveCache({
      path: h.cachePath,
      backend,
      fetched: mappings.map((m) => ({ mapping: parseMapping(m), value: Buffer.from("v") })),
      prune: true,
    });
    const invalidate = await psi(["cache", "invalidate", ids[0]!], env);
    expect(invalidate.code).toBe(0);
    expect(invalidate.stdout).toContain(`removed ${ids[0]}: infisical p:/ ONE`);
    expect((await readCacheFile({ path: h.cachePath, backend }))?.entries.size).toBe(1);
    await backend.close();
  });

  it("refuses to replace the key without --force and leaves key and cache alone", async () => {
    const h = await host(dir.path, "cache:\n  backend: tpm\n");
    const keyPath = join(h.configDir, "cache.key");
    expect(
      (await psi(["cache", "init", "--backend", "tpm", "--tpm2-device", tpm.device], h.env)).code,
    ).toBe(0);
    const key = await readFile(keyPath);
    const cache = await readFile(h.cachePath);
    const again = await psi(
      ["cache", "init", "--backend", "tpm", "--tpm2-device", tpm.device],
      h.env,
    );
    expect(again.code).toBe(1);
    expect(again.stderr).toContain(`a sealed cache key already exists at ${keyPath}`);
    expect(again.stderr).toContain("--force");
    expect((await readFile(keyPath)).equals(key)).toBe(true);
    expect((await readFile(h.cachePath)).equals(cache)).toBe(true);

    const failed = await psi(
      ["cache", "init", "--backend", "tpm", "--force", "--tpm2-device", "swtpm:port=1"],
      h.env,
    );
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(/systemd-creds encrypt failed \(exit \d+\): /);
    expect((await readFile(keyPath)).equals(key)).toBe(true);

    const forced = await psi(
      ["cache", "init", "--backend", "tpm", "--force", "--tpm2-device", tpm.device],
      h.env,
    );
    expect(forced.code).toBe(0);
    expect((await readFile(keyPath)).equals(key)).toBe(false);
  });

  it("--with-key host and --key-path: sealed with the host key, the directive names that path", async () => {
    const h = await host(dir.path, "");
    const keyPath = join(h.base, "elsewhere", "psi.cred");
    const env = { ...h.env, ...hostKeyEnv(h.base) };
    const init = await psi(
      ["cache", "init", "--backend", "tpm", "--with-key", "host", "--key-path", keyPath],
      env,
    );
    expect(init.stderr).toBe("");
    expect(init.code).toBe(0);
    expect(init.stdout).toContain("--with-key=host");
    expect(init.stdout).toContain(
      `LoadCredentialEncrypted=psi-cache-key:${keyPath} (psi systemd install writes ${join(h.configDir, "cache.key")})`,
    );
    expect(init.stdout).toContain(`set cache.backend: tpm in ${h.env["PSI_CONFIG"]}`);
    expect(await readdir(h.configDir)).toEqual(["config.yaml"]);
    const credsDir = await decryptCredential({
      credential: keyPath,
      credsDir: join(h.base, "creds"),
      env: hostKeyEnv(h.base),
    });
    const backend = createTpmCacheBackend({
      env: { CREDENTIALS_DIRECTORY: credsDir },
      configDir: h.configDir,
    });
    await backend.open();
    expect((await readCacheFile({ path: h.cachePath, backend }))?.entries.size).toBe(0);
    await backend.close();
  });

  it("rejects an unknown --with-key as a usage error", async () => {
    const h = await host(dir.path, "");
    const run = await psi(["cache", "init", "--backend", "tpm", "--with-key", "yubikey"], h.env);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("yubikey");
  });
});

describe.skipIf(requireNss())("psi cache init --backend hsm (NSS softokn)", () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  let token: TestToken;
  let h: Awaited<ReturnType<typeof host>>;

  beforeAll(async () => {
    dir = await tempDir("psi-cache-hsm-cli-");
    token = await createNssToken(dir.path);
  });
  afterAll(async () => {
    await token?.cleanup();
    await dir?.cleanup();
  });
  beforeEach(async () => {
    h = await host(
      dir.path,
      "cache:\n  backend: hsm\n",
      `providers:\n  nitrokeyhsm: ${JSON.stringify(token.nitrokeyhsm())}\n`,
    );
  });

  it("pins the token's key, writes an empty hsm cache that --verify opens on the token", async () => {
    const init = await psi(["cache", "init", "--backend", "hsm"], h.env);
    expect(init.stderr).toBe("");
    expect(init.code).toBe(0);
    const pin = (await readFile(join(h.stateDir, ".nitrokeyhsm-pubkey.sha256"), "utf8")).trim();
    expect(pin).toMatch(/^[0-9a-f]{64}$/);
    expect(init.stdout).toContain(`pinned the token's public key sha256:${pin}`);
    // It wrote no key: the cache is encrypted to the token's public key.
    expect(init.stdout).toContain(
      `wrote an empty cache to ${h.cachePath}, encrypted to the token's public key`,
    );
    expect(init.stdout).not.toContain("cache key");
    expect(readHeader(await readFile(h.cachePath))).toEqual({ version: 1, tag: 0x02 });

    const verify = await psi(["cache", "status", "--verify"], h.env);
    expect(verify.code).toBe(0);
    expect(verify.stdout).toContain("PSIC version 1, tag 0x02 (hsm)");
    expect(verify.stdout).toMatch(/verify\s+ok: 0 entries/);

    const again = await psi(["cache", "init", "--backend", "hsm"], h.env);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain("was already pinned");
  });

  it("refuses a token whose key differs from the pinned one, unless --force", async () => {
    expect((await psi(["cache", "init", "--backend", "hsm"], h.env)).code).toBe(0);
    const cache = await readFile(h.cachePath);
    await token.generateKeyPair({ replace: true });
    const swapped = await psi(["cache", "init", "--backend", "hsm"], h.env);
    expect(swapped.code).toBe(1);
    expect(swapped.stderr).toMatch(/not the pinned key|differs from the pinned key/);
    expect((await readFile(h.cachePath)).equals(cache)).toBe(true);

    const forced = await psi(["cache", "init", "--backend", "hsm", "--force"], h.env);
    expect(forced.code).toBe(0);
    expect(forced.stdout).toContain("pinned the token's public key");
    expect((await psi(["cache", "status", "--verify"], h.env)).code).toBe(0);
  });
});
