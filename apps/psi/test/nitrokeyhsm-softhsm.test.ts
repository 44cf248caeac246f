import { randomBytes } from "node:crypto";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { createNitrokeyHsmProvider } from "@psi/provider-nitrokeyhsm";
import { createSoftHsmToken, requireSoftHsm, type TestToken } from "@psi/testkit/pkcs11";
import { tempDir } from "@psi/testkit/tmp";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { psi, writeHsmConfig } from "./nitrokeyhsm-helpers.js";

// `psi nitrokeyhsm ...` in-process on SoftHSM 2 (OAEP-SHA1): happy paths and the failures
// an operator meets first (wrong PIN, missing module), with exit codes.
describe.skipIf(requireSoftHsm())("psi nitrokeyhsm on SoftHSM 2", () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  let token: TestToken;
  let stateDir: string;
  let env: Record<string, string>;
  const configPath = () => env["PSI_CONFIG"]!;

  beforeAll(async () => {
    dir = await tempDir("psi-cli-softhsm-");
    token = await createSoftHsmToken(dir.path);
  });
  afterAll(async () => {
    await token?.cleanup();
    await dir?.cleanup();
  });
  beforeEach(async () => {
    const run = join(dir.path, randomBytes(4).toString("hex"));
    stateDir = join(run, "state");
    await mkdir(join(run, "home"), { recursive: true });
    env = {
      HOME: join(run, "home"),
      XDG_RUNTIME_DIR: join(run, "xdg"),
      PSI_CONFIG: join(run, "config.yaml"),
    };
    await writeHsmConfig(configPath(), stateDir, token.nitrokeyhsm());
  });

  it("init, store --mapping-only, lookup, status and test-pin work with oaep_hash sha1", async () => {
    const init = await psi(["nitrokeyhsm", "init"], { env });
    expect(init.stderr).toBe("");
    expect(init.code).toBe(0);
    expect(init.stdout.toString()).toMatch(/^pinned: HSM key sha256:[0-9a-f]{64}\n/);

    const stored = await psi(["nitrokeyhsm", "store", "app--DB_URL", "--mapping-only"], {
      env,
      stdin: "postgres://u:pw@db/app",
    });
    expect(stored.code).toBe(0);
    const mapping = JSON.parse(stored.stdout.toString());
    expect(mapping.provider).toBe("nitrokeyhsm");
    const provider = createNitrokeyHsmProvider({ config: token.nitrokeyhsm(), stateDir, env: {} });
    await provider.open();
    try {
      expect(Buffer.from(await provider.lookup(mapping)).toString()).toBe("postgres://u:pw@db/app");
    } finally {
      await provider.close();
    }

    const status = await psi(["nitrokeyhsm", "status"], { env });
    expect(status.code).toBe(0);
    expect(status.stdout.toString()).toMatch(/pin status {3}matching/);
    expect(status.stdout.toString()).toMatch(/oaep_hash {4}sha1/);

    const tested = await psi(["nitrokeyhsm", "test-pin"], { env });
    expect(tested.code).toBe(0);
    expect(tested.stdout.toString()).toBe(
      'PIN from providers.nitrokeyhsm.pin: login to token "psi" (slot ' + `${token.slot}) works\n`,
    );
  });

  it("a wrong PIN: test-pin and preflight exit 1, name the PIN source, never print the PIN", async () => {
    await writeHsmConfig(configPath(), stateDir, token.nitrokeyhsm({ pin: null }));
    const wrong = { ...env, PSI_NITROKEYHSM_PIN: "987654" };
    const tested = await psi(["nitrokeyhsm", "test-pin"], { env: wrong });
    expect(tested.code).toBe(1);
    expect(tested.stdout.toString()).toBe("");
    expect(tested.stderr).toContain(`test-pin: slot ${token.slot}, PIN from PSI_NITROKEYHSM_PIN:`);
    expect(tested.stderr).toMatch(/rejected the user PIN \(PIN from PSI_NITROKEYHSM_PIN\)/);
    expect(tested.stderr).toMatch(/hint: .*locks after/);

    const preflight = await psi(["nitrokeyhsm", "preflight"], { env: wrong });
    expect(preflight.code).toBe(1);
    const text = preflight.stdout.toString();
    expect(text).toMatch(/^FAIL {2}login/m);
    expect(text).toMatch(/^skip {2}key found/m);
    expect(text).toMatch(/preflight failed: \d of 9 checks failed/);
    for (const out of [tested.stdout.toString(), tested.stderr, text, preflight.stderr]) {
      expect(out).not.toContain("987654");
    }

    const none = await psi(["nitrokeyhsm", "test-pin"], { env });
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/no HSM user PIN is configured/);
    expect(none.stderr).toMatch(/PSI_NITROKEYHSM_PIN/);
  });

  it("a slot that does not exist: test-pin names the slot on stderr, nothing on stdout", async () => {
    await writeHsmConfig(configPath(), stateDir, token.nitrokeyhsm({ slot: 4242 }));
    const tested = await psi(["nitrokeyhsm", "test-pin"], { env });
    expect(tested.code).toBe(1);
    expect(tested.stdout.toString()).toBe("");
    expect(tested.stderr).toContain("test-pin: slot 4242");
    expect(tested.stderr).not.toContain("login failed");
  });

  it("a missing module: preflight, init and status exit 1 and say how to fix it", async () => {
    const missing = join(dir.path, "no-such-pkcs11.so");
    await writeHsmConfig(configPath(), stateDir, token.nitrokeyhsm({ pkcs11_module: missing }));
    const preflight = await psi(["nitrokeyhsm", "preflight", "--json"], { env });
    expect(preflight.code).toBe(1);
    const report = JSON.parse(preflight.stdout.toString());
    expect(report.ok).toBe(false);
    expect(report.steps[0]).toMatchObject({ id: "module_file", status: "fail" });
    expect(report.steps[0].fix).toMatch(/pkcs11_module/);

    const init = await psi(["nitrokeyhsm", "init"], { env });
    expect(init.code).toBe(1);
    expect(init.stderr).toContain(`PKCS#11 module ${missing} does not exist`);
    expect(init.stderr).toMatch(/hint: install the module/);

    const status = await psi(["nitrokeyhsm", "status"], { env });
    expect(status.code).toBe(1);
    expect(status.stdout.toString()).toMatch(/token {8}unavailable: PKCS#11 module/);
  });

  it("rejects unknown subcommands and missing arguments as usage errors (exit 2)", async () => {
    expect((await psi(["nitrokeyhsm", "store"], { env })).code).toBe(2);
    expect((await psi(["nitrokeyhsm", "frobnicate"], { env })).code).toBe(2);
  });
});
