import type { ChildProcess } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import { saveCache } from "@psi/cache";
import { hsmCacheBackend } from "@psi/cache-hsm";
import { createKeyfileCacheBackend, initKeyfile } from "@psi/cache-keyfile";
import { createTpmCacheBackend } from "@psi/cache-tpm";
import {
  type CacheBackend,
  infisicalMappingBytes,
  loadConfig,
  makeContext,
  parseMapping,
} from "@psi/core";
import {
  createNssToken,
  createSoftHsmToken,
  requireNss,
  requireSoftHsm,
  type TestToken,
} from "@psi/testkit/pkcs11";
import { requireTool, tempDir } from "@psi/testkit/tmp";
import {
  decryptCredential,
  type Swtpm,
  startSwtpm,
  TPM_PACKAGES,
  tpmToolsAvailable,
} from "@psi/testkit/tpm";
import { captureLogger, unixRequest } from "@psi/testkit/unix-http";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { runPsi } from "./run-psi.js";
import { killRunning, requireBuiltCli, type Serve, spawnServe } from "./serve-helpers.js";

// `psi serve` (the built CLI, a real process) on each production cache backend with real
// components: the tpm backend on swtpm + systemd-creds, the hsm backend on NSS softokn
// (OAEP-SHA256) and SoftHSM 2 (OAEP-SHA1). The only provider points at a closed port, so a
// 200 can only come from cache.enc opened by that backend; a 502 means serve went live.

const PROJECT_ID = "0f3c1a2b-1111-4222-8333-444455556666";
/** Secret IDs, the infisical key each one maps to, and the value cached for it. */
const ENTRIES = [
  { id: "0123456789abcdef012345671", key: "DB_PASSWORD", value: "cached-one-hunter2" },
  { id: "0123456789abcdef012345672", key: "API_TOKEN", value: "cached-two-s3cr3t" },
  { id: "0123456789abcdef012345673", key: "EMPTY", value: "" },
];
const VALUES = ENTRIES.map((entry) => entry.value).filter((value) => value !== "");

const running: ChildProcess[] = [];
let counter = 0;

beforeAll(requireBuiltCli);
afterEach(() => killRunning(running));

/** A loopback port nothing listens on (bound by the kernel, then released). */
function closedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** One host under `root`: config dir (config.yaml 0600), state dir with the mappings, env. */
async function host(root: string, cacheBlock: string, extra = "") {
  const base = join(root, `host-${++counter}`);
  const configDir = join(base, "etc-psi");
  const stateDir = join(base, "state");
  await mkdir(configDir, { recursive: true });
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  await mkdir(join(base, "home"));
  const config = join(configDir, "config.yaml");
  const port = await closedPort();
  await writeFile(
    config,
    [
      `state_dir: ${stateDir}`,
      "providers:",
      "  infisical:",
      `    api_url: http://127.0.0.1:${port}`,
      "    auth: { method: universal-auth, client_id: cid, client_secret: csecret }",
      `    projects: { myproject: { id: ${PROJECT_ID}, environment: prod } }`,
      "    lookup_timeout: 5",
      extra,
      cacheBlock,
      "",
    ].join("\n"),
    { mode: 0o600 },
  );
  for (const entry of ENTRIES)
    await writeFile(join(stateDir, entry.id), mappingBytes(entry.key), { mode: 0o600 });
  const env: Record<string, string> = {
    HOME: join(base, "home"),
    XDG_RUNTIME_DIR: join(base, "run"),
    PSI_CONFIG: config,
    PSI_PODMAN_SOCKET: join(base, "no-podman.sock"),
    PATH: process.env["PATH"] ?? "/usr/bin:/bin",
  };
  return { base, configDir, stateDir, config, cachePath: join(stateDir, "cache.enc"), env };
}

type Host = Awaited<ReturnType<typeof host>>;

function mappingBytes(key: string): Uint8Array {
  return infisicalMappingBytes({ project: "myproject", path: "/myapp", key });
}

/** Writes every entry of {@link ENTRIES} into the host's cache.enc through `backend`. */
async function writeEntries(h: Host, backend: CacheBackend): Promise<void> {
  await saveCache({
    path: h.cachePath,
    backend,
    fetched: ENTRIES.map((entry) => ({
      mapping: parseMapping(mappingBytes(entry.key)),
      value: Buffer.from(entry.value),
    })),
    prune: true,
  });
}

/** Starts `psi serve -c <config> --socket <base>/run/psi.sock` with `env` on top of PATH and HOME. */
function serve(h: Host, env: Record<string, string> = {}): Serve {
  const socket = join(h.base, "run", "psi.sock");
  const started = spawnServe({
    config: h.config,
    socket,
    home: h.env["HOME"]!,
    args: ["--socket", socket],
    env,
  });
  running.push(started.child);
  return started;
}

/** SIGTERM, then the exit; asserts a clean exit 0 and that no cached value was logged. */
async function stop(s: Serve): Promise<void> {
  s.child.kill("SIGTERM");
  expect(await s.exited).toEqual({ code: 0, signal: null });
  for (const value of VALUES) expect(s.stderr()).not.toContain(value);
}

/** Every entry answers 200 with its cached value. */
async function expectCachedValues(s: Serve): Promise<void> {
  for (const entry of ENTRIES) {
    const hit = await unixRequest(s.socket, { path: `/lookup/${entry.id}` });
    expect(hit.status, entry.key).toBe(200);
    expect(hit.text, entry.key).toBe(entry.value);
  }
}

/** A lookup goes live to the unreachable provider: 502 provider_error, never a cached value. */
async function expectLiveFailure(s: Serve): Promise<void> {
  const live = await unixRequest(s.socket, { path: `/lookup/${ENTRIES[0]!.id}` });
  expect(live.status).toBe(502);
  expect(live.text).not.toContain(ENTRIES[0]!.value);
  expect(JSON.parse(live.text)).toMatchObject({ error: "provider_error" });
}

const listening = (r: { event?: string }) => r.event === "listen";

describe.skipIf(
  requireTool(tpmToolsAvailable(), "swtpm, systemd-creds and tpm2-tools", TPM_PACKAGES),
)("psi serve with the tpm cache backend (swtpm + systemd-creds)", () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  let tpm: Swtpm;

  beforeAll(async () => {
    dir = await tempDir("psi-serve-tpm-");
    tpm = await startSwtpm(dir.path);
  });
  afterAll(async () => {
    await tpm?.stop();
    await dir?.cleanup();
  });

  /** `psi cache init --backend tpm` on swtpm, then what LoadCredentialEncrypted= does. */
  async function sealedHost(): Promise<{ h: Host; keyPath: string; credsDir: string }> {
    const h = await host(dir.path, "cache: { backend: tpm }");
    const init = await runPsi(["cache", "init", "--backend", "tpm", "--tpm2-device", tpm.device], {
      env: h.env,
    });
    expect(init.stderr).toBe("");
    expect(init.code).toBe(0);
    const keyPath = join(h.configDir, "cache.key");
    const credsDir = await decryptCredential({
      credential: keyPath,
      credsDir: join(h.base, "creds"),
      tpm,
    });
    return { h, keyPath, credsDir };
  }

  it("serves cache.enc with the TPM-sealed key; without CREDENTIALS_DIRECTORY it names LoadCredentialEncrypted=, goes live and exits 0", async () => {
    const { h, keyPath, credsDir } = await sealedHost();
    const backend = createTpmCacheBackend({
      env: { CREDENTIALS_DIRECTORY: credsDir },
      configDir: h.configDir,
    });
    await backend.open();
    try {
      await writeEntries(h, backend);
    } finally {
      await backend.close();
    }

    const sealed = serve(h, { CREDENTIALS_DIRECTORY: credsDir });
    const listen = await sealed.waitFor(listening, "Listening on");
    expect(listen["cache"]).toBe("file");
    const loaded = sealed.records().find((r) => r.event === "cache.load");
    expect(loaded).toMatchObject({ level: "info", backend: "tpm", entries: ENTRIES.length });
    await expectCachedValues(sealed);
    await stop(sealed);

    const unsealed = serve(h);
    const warning = await unsealed.waitFor(
      (r) => r.event === "cache.open" && r.level === "warn",
      "the missing-credential warning",
    );
    expect(warning.msg).toContain("cache backend tpm failed to open");
    expect(String(warning["error"])).toContain("CREDENTIALS_DIRECTORY is not set");
    expect(String(warning["hint"])).toContain(`LoadCredentialEncrypted=psi-cache-key:${keyPath}`);
    expect((await unsealed.waitFor(listening, "Listening on"))["cache"]).toBe("memory");
    await expectLiveFailure(unsealed);
    await stop(unsealed);
  });

  it("names both backends and the fix when cache.enc was written by keyfile but the config says tpm", async () => {
    const { h, credsDir } = await sealedHost();
    const keyFile = join(h.base, "cache.keyfile");
    await initKeyfile({ path: keyFile });
    const keyfile = createKeyfileCacheBackend({ path: keyFile });
    await keyfile.open();
    try {
      await writeEntries(h, keyfile);
    } finally {
      await keyfile.close();
    }

    const s = serve(h, { CREDENTIALS_DIRECTORY: credsDir });
    const warning = await s.waitFor(
      (r) => r.event === "cache.load" && r.level === "warn",
      "the tag warning",
    );
    expect(warning["code"]).toBe("cache.tag_mismatch");
    const text = `${warning.msg} ${String(warning["error"])} ${String(warning["hint"])}`;
    for (const word of ["0x01", "0x03", "tpm", "keyfile", "psi cache init"])
      expect(text).toContain(word);
    expect((await s.waitFor(listening, "Listening on"))["cache"]).toBe("file");
    await expectLiveFailure(s);
    await stop(s);
  });
});

/** The hsm backend suite on one kind of token. */
function hsmSuite(label: string, skip: boolean, create: (dir: string) => Promise<TestToken>): void {
  describe.skipIf(skip)(`psi serve with the hsm cache backend (${label})`, () => {
    let dir: { path: string; cleanup: () => Promise<void> };
    let token: TestToken;

    beforeAll(async () => {
      dir = await tempDir("psi-serve-hsm-");
      token = await create(dir.path);
    });
    afterAll(async () => {
      await token?.cleanup();
      await dir?.cleanup();
    });

    it("serves cache.enc through the token; after the token's key is swapped it refuses the backend, goes live and exits 0", async () => {
      // the PIN reaches every process through PSI_NITROKEYHSM_PIN, not the config
      const hsm = token.nitrokeyhsm({ pin: null });
      const h = await host(
        dir.path,
        "cache: { backend: hsm }",
        `  nitrokeyhsm: ${JSON.stringify(hsm)}`,
      );
      const env = { ...h.env, ...token.env, PSI_NITROKEYHSM_PIN: token.pin };
      const init = await runPsi(["cache", "init", "--backend", "hsm"], { env });
      expect(init.stderr).toBe("");
      expect(init.code).toBe(0);
      expect(init.stdout).toContain("pinned the token's public key");

      const loaded = await loadConfig({ path: h.config, env, uid: 1000 });
      const context = makeContext(loaded, { logger: captureLogger().logger, env });
      const backend = hsmCacheBackend(context);
      await backend.open();
      try {
        await writeEntries(h, backend);
      } finally {
        await backend.close();
      }

      const childEnv = { ...token.env, PSI_NITROKEYHSM_PIN: token.pin };
      const first = serve(h, childEnv);
      expect((await first.waitFor(listening, "Listening on"))["cache"]).toBe("file");
      expect(first.records().find((r) => r.event === "cache.load")).toMatchObject({
        level: "info",
        backend: "hsm",
        entries: ENTRIES.length,
      });
      await expectCachedValues(first);
      await stop(first);

      await token.generateKeyPair({ replace: true });
      const swapped = serve(h, childEnv);
      const warning = await swapped.waitFor(
        (r) => r.event === "cache.open" && r.level === "warn",
        "the key-mismatch warning",
      );
      expect(warning.msg).toContain("cache backend hsm failed to open");
      expect(String(warning["error"])).toMatch(/not the pinned key \(sha256:[0-9a-f]{64}/);
      expect((await swapped.waitFor(listening, "Listening on"))["cache"]).toBe("memory");
      await expectLiveFailure(swapped);
      await stop(swapped);
    });
  });
}

hsmSuite("NSS softokn, OAEP-SHA256", requireNss(), (dir) => createNssToken(dir));
hsmSuite("SoftHSM 2, OAEP-SHA1", requireSoftHsm(), (dir) => createSoftHsmToken(dir));
