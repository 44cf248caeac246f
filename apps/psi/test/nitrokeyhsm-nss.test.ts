import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { mkdir, readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { parseMapping } from "@psi/core";
import { createNitrokeyHsmProvider } from "@psi/provider-nitrokeyhsm";
import { createNssToken, requireNss, type TestToken } from "@psi/testkit/pkcs11";
import { podmanAvailable, podmanSandbox, stateDirDriverConf } from "@psi/testkit/podman";
import { requireTool, tempDir } from "@psi/testkit/tmp";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { psi, writeHsmConfig } from "./nitrokeyhsm-helpers.js";

const VECTORS = join(import.meta.dirname, "../../../vectors");

// `psi nitrokeyhsm ...` in-process on NSS softokn (OAEP-SHA256, PSI's default).
describe.skipIf(requireNss())("psi nitrokeyhsm on NSS softokn", () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  let token: TestToken;
  let run: string;
  let stateDir: string;
  let env: Record<string, string>;

  beforeAll(async () => {
    dir = await tempDir("psi-cli-nss-");
    token = await createNssToken(dir.path);
  });
  afterAll(async () => {
    await token?.cleanup();
    await dir?.cleanup();
  });
  beforeEach(async () => {
    run = join(dir.path, randomBytes(4).toString("hex"));
    stateDir = join(run, "state");
    await mkdir(join(run, "home"), { recursive: true });
    env = {
      HOME: join(run, "home"),
      XDG_RUNTIME_DIR: join(run, "xdg"),
      PSI_CONFIG: join(run, "config.yaml"),
    };
    await writeHsmConfig(env["PSI_CONFIG"]!, stateDir, token.nitrokeyhsm());
  });

  const lookup = async (mapping: unknown, config = token.nitrokeyhsm()): Promise<Buffer> => {
    const provider = createNitrokeyHsmProvider({ config, stateDir, env: {} });
    await provider.open();
    try {
      return Buffer.from(await provider.lookup(parseMapping(JSON.stringify(mapping))));
    } finally {
      await provider.close();
    }
  };

  it("preflight before init fails only at the pin; init pins; preflight --json then passes", async () => {
    const before = await psi(["nitrokeyhsm", "preflight"], { env });
    expect(before.code).toBe(1);
    expect(before.stdout.toString()).toMatch(/^FAIL {2}key pinned +no pin recorded/m);
    expect(before.stdout.toString()).toMatch(/^ok {4}OAEP round trip +RSA-OAEP-SHA256/m);

    const init = await psi(["nitrokeyhsm", "init"], { env });
    expect(init.code).toBe(0);
    expect(init.stdout.toString()).toMatch(/^pinned: HSM key sha256:/);
    expect((await stat(join(stateDir, ".nitrokeyhsm-pubkey.sha256"))).mode & 0o777).toBe(0o600);
    const again = await psi(["nitrokeyhsm", "init"], { env });
    expect(again.code).toBe(0);
    expect(again.stdout.toString()).toMatch(/^already pinned: /);

    const after = await psi(["nitrokeyhsm", "preflight", "--json"], { env });
    expect(after.code).toBe(0);
    const report = JSON.parse(after.stdout.toString());
    expect(report.ok).toBe(true);
    expect(report.steps).toHaveLength(9);
  });

  it("store --mapping-only prints a mapping the provider opens on the token; status counts it", async () => {
    expect((await psi(["nitrokeyhsm", "init"], { env })).code).toBe(0);
    const value = "sk_live_\u00e9\u{1f600}";
    const stored = await psi(["nitrokeyhsm", "store", "api--KEY", "--mapping-only"], {
      env,
      stdin: value,
    });
    expect(stored.code).toBe(0);
    const text = stored.stdout.toString();
    expect(text).toMatch(/^\{"provider": "nitrokeyhsm", "blob": "[A-Za-z0-9+/=]+"\}$/);
    expect(text).not.toContain("sk_live");
    expect((await lookup(JSON.parse(text))).toString()).toBe(value);

    const status = await psi(["nitrokeyhsm", "status", "--json"], { env });
    expect(status.code).toBe(0);
    const parsed = JSON.parse(status.stdout.toString());
    expect(parsed).toMatchObject({
      configured: true,
      pin: "matching",
      mappings: { nitrokeyhsm: 0 },
    });
  });

  it("store refuses an empty value, an uninitialized host and an unconfigured provider", async () => {
    const uninitialized = await psi(["nitrokeyhsm", "store", "x", "--mapping-only"], {
      env,
      stdin: "v",
    });
    expect(uninitialized.code).toBe(1);
    expect(uninitialized.stderr).toMatch(/psi nitrokeyhsm init/);
    expect(uninitialized.stdout.length).toBe(0);

    expect((await psi(["nitrokeyhsm", "init"], { env })).code).toBe(0);
    const empty = await psi(["nitrokeyhsm", "store", "x", "--mapping-only"], { env, stdin: "" });
    expect(empty.code).toBe(1);
    expect(empty.stderr).toMatch(/nitrokeyhsm store x: stdin is empty/);

    await writeHsmConfig(env["PSI_CONFIG"]!, stateDir, undefined);
    const unconfigured = await psi(["nitrokeyhsm", "store", "x", "--mapping-only"], {
      env,
      stdin: "v",
    });
    expect(unconfigured.code).toBe(1);
    expect(unconfigured.stderr).toMatch(/nitrokeyhsm provider is not configured/);
  });

  it("a swapped key: status exits 1 with a mismatch, init refuses, init --force re-pins", async () => {
    const swap = token.nitrokeyhsm({ key_id: "05", key_label: "swap-cli" });
    await token.generateKeyPair({ id: "05", label: "swap-cli", replace: true });
    await writeHsmConfig(env["PSI_CONFIG"]!, stateDir, swap);
    expect((await psi(["nitrokeyhsm", "init"], { env })).code).toBe(0);
    await token.generateKeyPair({ id: "05", label: "swap-cli", replace: true });

    const status = await psi(["nitrokeyhsm", "status"], { env });
    expect(status.code).toBe(1);
    expect(status.stdout.toString()).toMatch(/pin status {3}mismatch/);
    const init = await psi(["nitrokeyhsm", "init"], { env });
    expect(init.code).toBe(1);
    expect(init.stderr).toMatch(/^psi: not re-pinning: the key on the HSM \(sha256:/);
    expect(init.stderr).toMatch(/--force/);
    const forced = await psi(["nitrokeyhsm", "init", "--force"], { env });
    expect(forced.code).toBe(0);
    expect(forced.stdout.toString()).toMatch(/^re-pinned \(was sha256:[0-9a-f]{64}\): HSM key/);
  });

  it("decrypts the shared vector mapping with the imported private key", async () => {
    const pem = readFileSync(join(VECTORS, "hsm-private-key.pem"), "utf8");
    await token.importPrivateKey(pem, { id: "06", label: "vector-cli", replace: true });
    const mapping = JSON.parse(readFileSync(join(VECTORS, "nitrokeyhsm-mapping.json"), "utf8"));
    const manifest = JSON.parse(readFileSync(join(VECTORS, "manifest.json"), "utf8"));
    const plain = await lookup(
      mapping,
      token.nitrokeyhsm({ key_id: "06", key_label: "vector-cli" }),
    );
    expect(plain.toString("base64")).toBe(manifest.nitrokeyhsm_plaintext_b64);
  });

  it("setup-pcscd --output-dir writes the volume and pcscd quadlets for pcscd_volume", async () => {
    await writeHsmConfig(
      env["PSI_CONFIG"]!,
      stateDir,
      token.nitrokeyhsm({ pcscd_volume: "hsm-sock" }),
    );
    const out = join(run, "units");
    const result = await psi(["nitrokeyhsm", "setup-pcscd", "--output-dir", out], { env });
    expect(result.code).toBe(0);
    expect((await readdir(out)).sort()).toEqual([
      "hsm-sock.volume",
      "pcscd.Containerfile",
      "pcscd.container",
    ]);
    expect(await readFile(join(out, "pcscd.container"), "utf8")).toContain(
      "Volume=hsm-sock.volume:/run/pcscd:rw",
    );
    expect((await stat(join(out, "hsm-sock.volume"))).mode & 0o777).toBe(0o644);
    const bad = await psi(["nitrokeyhsm", "setup-pcscd", "--mode", "usb"], { env });
    expect(bad.code).toBe(2);
  });

  // A real Podman registers the secret; its shell driver here is a plain `cat` into
  // state_dir (what psi serve's /store does), so no lookup service is needed.
  const skipPodman = requireTool(podmanAvailable(), "podman", "podman");
  it.skipIf(skipPodman)(
    "store registers the Podman secret through the API; the mapping lands in state_dir/<id>",
    async () => {
      expect((await psi(["nitrokeyhsm", "init"], { env })).code).toBe(0);
      const sandboxDir = join(run, "podman");
      await mkdir(sandboxDir, { recursive: true });
      const conf = stateDirDriverConf(stateDir);
      const podman = await podmanSandbox(sandboxDir, conf);
      await podman.startService();
      try {
        const stored = await psi(
          ["nitrokeyhsm", "store", "app--TOKEN", "--podman-socket", podman.socketPath, "--json"],
          { env, stdin: "t0ken-value" },
        );
        expect(stored.stderr).toBe("");
        expect(stored.code).toBe(0);
        const result = JSON.parse(stored.stdout.toString());
        expect(result).toMatchObject({ name: "app--TOKEN", stored: true });
        const mapping = JSON.parse(await readFile(join(stateDir, result.id), "utf8"));
        expect(mapping.provider).toBe("nitrokeyhsm");
        expect((await lookup(mapping)).toString()).toBe("t0ken-value");

        // storing again replaces the secret (new ID, new blob)
        const again = await psi(
          ["nitrokeyhsm", "store", "app--TOKEN", "--podman-socket", podman.socketPath, "--json"],
          { env, stdin: "rotated" },
        );
        expect(again.code).toBe(0);
        const second = JSON.parse(again.stdout.toString());
        const rotated = JSON.parse(await readFile(join(stateDir, second.id), "utf8"));
        expect((await lookup(rotated)).toString()).toBe("rotated");
        const status = await psi(["nitrokeyhsm", "status", "--offline", "--json"], { env });
        expect(JSON.parse(status.stdout.toString()).mappings.nitrokeyhsm).toBe(1);
      } finally {
        await podman.stop();
      }
    },
  );
});
