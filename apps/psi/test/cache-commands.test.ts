import { copyFile, mkdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { readCacheFile, saveCache } from "@psi/cache";
import { createKeyfileCacheBackend, initKeyfile } from "@psi/cache-keyfile";
import { type CacheBackend, infisicalMappingBytes, parseMapping } from "@psi/core";
import { cacheKey } from "@psi/envelope";
import { createPodmanClient } from "@psi/podman";
import { type PodmanSandbox, podmanAvailable, podmanSandbox } from "@psi/testkit/podman";
import { requireTool, tempDir } from "@psi/testkit/tmp";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { runPsi } from "./run-psi.js";

// `psi cache status` and `psi cache invalidate` on a keyfile cache (tpm and hsm init are in
// cache-init-tpm-hsm.test.ts), name resolution through a real Podman service.

const vectors = join(import.meta.dirname, "..", "..", "..", "vectors");

type Run = Awaited<ReturnType<typeof psi>>;

// As at a terminal: `cache status` prints its table (it prints JSON when piped).
function psi(args: string[], env: Record<string, string>) {
  return runPsi(args, { env, tty: true });
}

/** Three Infisical secrets: ID → mapping bytes and value (values must never be printed). */
const SECRETS = [
  { id: "a1b2c3d4e5f6a7b8c9d0e1f2a", key: "DB_HOST", value: "db.internal-VALUE-1" },
  { id: "b1b2c3d4e5f6a7b8c9d0e1f2b", key: "DB_PASSWORD", value: "hunter2-VALUE-2" },
  { id: "c1b2c3d4e5f6a7b8c9d0e1f2c", key: "API_KEY", value: "sk-VALUE-3" },
].map((s) => ({
  ...s,
  mapping: infisicalMappingBytes({ project: "myproject", path: "/myapp", key: s.key }),
}));

let dir: { path: string; cleanup: () => Promise<void> };
let env: Record<string, string>;
let stateDir: string;
let keyFile: string;
let cachePath: string;

async function openBackend(): Promise<CacheBackend> {
  const backend = createKeyfileCacheBackend({ path: keyFile });
  await backend.open();
  return backend;
}

/** Writes cache.enc holding the given secrets (as setup would), and their mapping files. */
async function populate(secrets = SECRETS): Promise<void> {
  await mkdir(stateDir, { recursive: true });
  for (const s of secrets) await writeFile(join(stateDir, s.id), s.mapping, { mode: 0o600 });
  const backend = await openBackend();
  await saveCache({
    path: cachePath,
    backend,
    previous: null,
    prune: true,
    fetched: secrets.map((s) => ({
      mapping: parseMapping(s.mapping),
      value: Buffer.from(s.value),
    })),
  });
  await backend.close();
}

async function cachedKeys(): Promise<{ hmacKey: string; keys: string[] }> {
  const backend = await openBackend();
  const decoded = await readCacheFile({ path: cachePath, backend });
  await backend.close();
  if (!decoded) throw new Error("no cache file");
  return {
    hmacKey: Buffer.from(decoded.hmacKey).toString("hex"),
    keys: [...decoded.entries.keys()].sort(),
  };
}

async function keyOf(mapping: Uint8Array): Promise<string> {
  const backend = await openBackend();
  const decoded = await readCacheFile({ path: cachePath, backend });
  await backend.close();
  if (!decoded) throw new Error("no cache file");
  return cacheKey(decoded.hmacKey, parseMapping(mapping));
}

function expectNoValues(run: Run): void {
  for (const s of SECRETS) {
    expect(run.stdout).not.toContain(s.value);
    expect(run.stderr).not.toContain(s.value);
  }
}

beforeEach(async () => {
  dir = await tempDir("psi-cache-cmd-");
  stateDir = join(dir.path, "state");
  keyFile = join(dir.path, "cache.keyfile");
  cachePath = join(stateDir, "cache.enc");
  await mkdir(join(dir.path, "home"));
  env = {
    HOME: join(dir.path, "home"),
    XDG_RUNTIME_DIR: join(dir.path, "run"),
    PSI_CONFIG: join(dir.path, "config.yaml"),
    PSI_PODMAN_SOCKET: join(dir.path, "no-podman.sock"),
    PATH: process.env["PATH"] ?? "/usr/bin:/bin",
  };
  await initKeyfile({ path: keyFile });
  await writeFile(
    join(dir.path, "config.yaml"),
    `state_dir: ${stateDir}\ncache:\n  backend: keyfile\n  key_file: ${keyFile}\n`,
  );
});

afterEach(async () => {
  await dir.cleanup();
});

describe("psi cache status", () => {
  it("says when there is no cache file", async () => {
    const run = await psi(["cache", "status"], env);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(cachePath);
    expect(run.stdout).toMatch(/backend\s+keyfile/);
    expect(run.stdout).toMatch(/file\s+does not exist/);
  });

  it("shows size, last-written time, version and tag from the header", async () => {
    await populate();
    const size = (await stat(cachePath)).size;
    const run = await psi(["cache", "status"], env);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/enabled\s+yes/);
    expect(run.stdout).toMatch(new RegExp(`size\\s+${size} bytes`));
    expect(run.stdout).toMatch(/last written\s+\d{4}-\d\d-\d\dT.*Z \(\d+s ago\)/);
    expect(run.stdout).toContain("PSIC version 1, tag 0x03 (keyfile)");
    expect(run.stdout).not.toContain("warning");

    const json = await psi(["--json", "cache", "status"], env);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({
      path: cachePath,
      enabled: true,
      backend: "keyfile",
      exists: true,
      size,
      mode: "0600",
      version: 1,
      tag: 3,
      tag_backend: "keyfile",
      mismatch: false,
    });
  });

  it("never opens the backend without --verify; --verify decrypts and counts", async () => {
    await populate();
    const saved = await readFile(keyFile);
    await rm(keyFile);
    const plain = await psi(["cache", "status"], env);
    expect(plain.code).toBe(0);
    expect(plain.stdout).not.toContain("verify");

    const broken = await psi(["cache", "status", "--verify"], env);
    expect(broken.code).toBe(1);
    expect(broken.stdout).toMatch(/verify\s+FAILED: .*cache\.keyfile/);

    await writeFile(keyFile, saved, { mode: 0o600 });
    const ok = await psi(["cache", "status", "--verify"], env);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/verify\s+ok: 3 entries, written_at \d{4}-/);
    expectNoValues(ok);
    const json = await psi(["--json", "cache", "status", "--verify"], env);
    expect(JSON.parse(json.stdout).verify).toMatchObject({ ok: true, entries: 3, legacy: false });
  });

  it("calls out an on-disk tag that differs from the configured backend", async () => {
    await mkdir(stateDir, { recursive: true });
    await copyFile(join(vectors, "tpm-cache.enc"), cachePath);
    const run = await psi(["cache", "status"], env);
    expect(run.code).toBe(1);
    expect(run.stdout).toContain("tag 0x01 (tpm)");
    expect(run.stdout).toMatch(/written by the tpm backend .* but cache\.backend is keyfile/);
    expect(run.stdout).toContain("psi cache init --backend keyfile");
    const json = await psi(["--json", "cache", "status"], env);
    expect(JSON.parse(json.stdout)).toMatchObject({
      tag: 1,
      tag_backend: "tpm",
      backend: "keyfile",
      mismatch: true,
    });
  });

  it("reports a file that is not a PSI cache", async () => {
    await mkdir(stateDir, { recursive: true });
    await copyFile(join(vectors, "bad-magic.enc"), cachePath);
    const run = await psi(["cache", "status"], env);
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(/error\s+.*is not a PSI cache file/);
  });
});

describe("psi cache invalidate", () => {
  it("drops one entry by secret ID and says what it was", async () => {
    await populate();
    const before = await cachedKeys();
    const gone = await keyOf(SECRETS[0]!.mapping);
    const run = await psi(["cache", "invalidate", SECRETS[0]!.id], env);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(`removed ${SECRETS[0]!.id}: infisical myproject:/myapp DB_HOST`);
    expect(run.stdout).toContain(`2 entries left in ${cachePath}`);
    expectNoValues(run);
    const after = await cachedKeys();
    expect(after.hmacKey).toBe(before.hmacKey);
    expect(after.keys).toEqual(before.keys.filter((k) => k !== gone));
    expect((await stat(cachePath)).mode & 0o777).toBe(0o600);
  });

  it("leaves the file alone when the secret is not cached", async () => {
    await populate(SECRETS.slice(1));
    await writeFile(join(stateDir, SECRETS[0]!.id), SECRETS[0]!.mapping);
    const bytes = await readFile(cachePath);
    const run = await psi(["--json", "cache", "invalidate", SECRETS[0]!.id], env);
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({
      removed: [
        { target: SECRETS[0]!.id, id: SECRETS[0]!.id, provider: "infisical", removed: false },
      ],
      entries: 2,
    });
    expect((await readFile(cachePath)).equals(bytes)).toBe(true);
  });

  it("--all empties the cache and keeps the HMAC key", async () => {
    await populate();
    const before = await cachedKeys();
    const run = await psi(["cache", "invalidate", "--all"], env);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(`removed all 3 entries from ${cachePath}`);
    const after = await cachedKeys();
    expect(after).toEqual({ hmacKey: before.hmacKey, keys: [] });
  });

  it("is a usage error with neither targets nor --all, or with both", async () => {
    expect((await psi(["cache", "invalidate"], env)).code).toBe(2);
    expect((await psi(["cache", "invalidate", "--all", SECRETS[0]!.id], env)).code).toBe(2);
  });

  it("says so when a name cannot be resolved because Podman is not reachable", async () => {
    await populate();
    const bytes = await readFile(cachePath);
    const run = await psi(["cache", "invalidate", "myapp--DB_HOST"], env);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`Podman is not reachable at ${env["PSI_PODMAN_SOCKET"]}`);
    expect(run.stderr).toContain("podman secret inspect");
    expect((await readFile(cachePath)).equals(bytes)).toBe(true);
  });
});

const noPodman = requireTool(podmanAvailable(), "podman", "podman");

describe.skipIf(noPodman)("psi cache invalidate by Podman secret name (real Podman)", () => {
  let podmanDir: { path: string; cleanup: () => Promise<void> };
  let sandbox: PodmanSandbox;
  let driverDir: string;

  beforeAll(async () => {
    podmanDir = await tempDir("psi-cache-podman-");
    // Podman's real shell driver, storing mappings the way psi serve's /store does:
    // one file per secret ID in a directory that the test then uses as state_dir.
    driverDir = join(podmanDir.path, "state");
    await mkdir(driverDir);
    const conf =
      '[secrets]\ndriver = "shell"\n\n[secrets.opts]\n' +
      `store = "cat > ${driverDir}/$SECRET_ID"\n` +
      `lookup = "cat ${driverDir}/$SECRET_ID"\n` +
      `delete = "rm -f ${driverDir}/$SECRET_ID"\n` +
      `list = "ls ${driverDir}"\n`;
    sandbox = await podmanSandbox(podmanDir.path, conf);
    await sandbox.startService();
  });

  afterAll(async () => {
    await sandbox?.stop();
    await podmanDir?.cleanup();
  });

  it("resolves workload--KEY to its secret ID and drops that entry", async () => {
    stateDir = driverDir;
    cachePath = join(dir.path, "cache.enc");
    await writeFile(
      join(dir.path, "config.yaml"),
      `state_dir: ${stateDir}\ncache:\n  backend: keyfile\n  key_file: ${keyFile}\n  path: ${cachePath}\n`,
    );
    const podman = createPodmanClient({ socketPath: sandbox.socketPath });
    const registered = [];
    for (const s of SECRETS) {
      const { id } = await podman.replaceSecret(`myapp--${s.key}`, s.mapping);
      registered.push({ ...s, id });
    }
    await populate(registered);
    const before = await cachedKeys();
    const gone = await keyOf(SECRETS[1]!.mapping);

    const run = await psi(
      ["cache", "invalidate", "--podman-socket", sandbox.socketPath, "myapp--DB_PASSWORD"],
      env,
    );
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(
      `removed myapp--DB_PASSWORD (ID ${registered[1]!.id}): infisical myproject:/myapp DB_PASSWORD`,
    );
    expectNoValues(run);
    expect((await cachedKeys()).keys).toEqual(before.keys.filter((k) => k !== gone));

    // PSI_PODMAN_SOCKET works as well, and names and IDs mix.
    const both = await psi(["--json", "cache", "invalidate", "myapp--DB_HOST", registered[2]!.id], {
      ...env,
      PSI_PODMAN_SOCKET: sandbox.socketPath,
    });
    expect(both.code).toBe(0);
    expect(JSON.parse(both.stdout)).toMatchObject({
      removed: [
        { target: "myapp--DB_HOST", name: "myapp--DB_HOST", id: registered[0]!.id, removed: true },
        { target: registered[2]!.id, id: registered[2]!.id, removed: true },
      ],
      entries: 0,
    });
  });

  it("refuses names Podman does not know, and secrets PSI does not serve, without writing", async () => {
    stateDir = join(dir.path, "state");
    await populate();
    const bytes = await readFile(cachePath);
    const penv = { ...env, PSI_PODMAN_SOCKET: sandbox.socketPath };

    const unknown = await psi(["cache", "invalidate", "myapp--NOPE"], penv);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('"myapp--NOPE" is neither a secret ID with a mapping');

    const podman = createPodmanClient({ socketPath: sandbox.socketPath });
    const { id } = await podman.replaceSecret("other--FILE", Buffer.from("x"), { driver: "file" });
    const foreign = await psi(["cache", "invalidate", SECRETS[0]!.id, "other--FILE"], penv);
    expect(foreign.code).toBe(1);
    expect(foreign.stderr).toContain(
      `Podman secret other--FILE (ID ${id}, driver file) has no mapping in ${stateDir}`,
    );
    expect((await readFile(cachePath)).equals(bytes)).toBe(true);
  });
});
