// Native install (SPEC §15): `npm install -g @psi/cli` and `pnpm add -g @psi/cli` into
// temp prefixes with the real clients, from the tarballs `pnpm pack` makes (served as the
// @psi scope's registry; graphene-pk11, pkcs11js and the rest come from the real npm
// registry). The installed psi runs on this Node, builds or explains its PKCS#11 addon,
// and writes native units that start that Node with its flags.
import { execFile, execFileSync } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { packWorkspace, serveTarballs, type TarballRegistry } from "@psi/testkit/pack";
import { createSoftHsmToken, requireSoftHsm, type TestToken } from "@psi/testkit/pkcs11";
import { requireTool, tempDir } from "@psi/testkit/tmp";
import { NODE_FLAGS } from "@psi/unitgen";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const execFileP = promisify(execFile);
const ROOT = join(dirname(new URL(import.meta.url).pathname), "..", "..", "..");
const VERSION = (
  JSON.parse(await readFile(join(ROOT, "apps/psi/package.json"), "utf8")) as { version: string }
).version;
// The supported Node: the one running the tests (the toolchain's Node 24, >= 22).
const NODE_BIN = dirname(process.execPath);

function onPath(command: string): boolean {
  try {
    execFileSync("sh", ["-c", `command -v ${command}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

const skip =
  requireTool(onPath("npm"), "npm", "npm") ||
  requireTool(onPath("pnpm"), "pnpm", "pnpm (bash scripts/dev.sh env puts it on PATH)") ||
  requireTool(onPath("g++") && onPath("make"), "a C++ toolchain for pkcs11js", "build-essential") ||
  requireSoftHsm();

let tmp: { path: string; cleanup: () => Promise<void> };
let registry: TarballRegistry;
let token: TestToken;
let hsmConfig = "";

/** Runs a command with Node first on PATH; output and exit code, never throws. */
async function sh(
  file: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execFileP(file, args, {
      cwd: tmp.path,
      env: { ...process.env, PATH: `${NODE_BIN}:${process.env["PATH"]}`, ...env },
      maxBuffer: 16 * 1024 * 1024,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return {
      code: typeof e.code === "number" ? e.code : 1,
      stdout: e.stdout ?? "",
      stderr: e.stderr ?? "",
    };
  }
}

/** `npm install -g @psi/cli` into `prefix` (the README's command plus the test's registry). */
async function npmInstall(prefix: string, extra: string[]): Promise<string> {
  const result = await sh("npm", [
    "install",
    "-g",
    "--prefix",
    prefix,
    "--cache",
    join(tmp.path, "npm-cache"),
    "--no-audit",
    "--no-fund",
    `--@psi:registry=${registry.url}`,
    ...extra,
    "@psi/cli",
  ]);
  expect(result.code, result.stderr).toBe(0);
  return join(prefix, "bin", "psi");
}

type Preflight = { steps: Array<{ id: string; status: string; detail: string; fix?: string }> };

async function preflight(psi: string): Promise<Preflight & { code: number; stderr: string }> {
  const run = await sh(psi, ["--json", "-c", hsmConfig, "nitrokeyhsm", "preflight"], token.env);
  return { ...(JSON.parse(run.stdout) as Preflight), code: run.code, stderr: run.stderr };
}

/** The checks that need the addon and the token, up to the OAEP round trip. */
const PKCS11_STEPS = ["module_load", "token", "login", "key", "public_key", "oaep"];

beforeAll(async () => {
  if (skip) return;
  tmp = await tempDir("psi-native-install-");
  const packs = join(tmp.path, "packs");
  await execFileP("mkdir", ["-p", packs]);
  registry = await serveTarballs(await packWorkspace(packs));
  token = await createSoftHsmToken(tmp.path);
  hsmConfig = join(tmp.path, "hsm.yaml");
  await writeFile(
    hsmConfig,
    `state_dir: ${join(tmp.path, "state")}\nproviders:\n  nitrokeyhsm: ${JSON.stringify(token.nitrokeyhsm())}\n`,
  );
}, 600_000);

afterAll(async () => {
  if (skip) return;
  await token?.cleanup();
  await registry?.close();
  await tmp?.cleanup();
});

describe.skipIf(skip)("native install", () => {
  it("npm install -g --allow-scripts=pkcs11js: psi runs, the PKCS#11 addon works, units start this Node", {
    timeout: 600_000,
  }, async () => {
    const prefix = join(tmp.path, "npm");
    const psi = await npmInstall(prefix, ["--allow-scripts=pkcs11js"]);
    const version = await sh(psi, ["--version"]);
    expect(version.stdout.trim()).toBe(VERSION);

    const report = await preflight(psi);
    for (const id of PKCS11_STEPS) {
      const step = report.steps.find((s) => s.id === id)!;
      expect(step.status, `${id}: ${step.detail}`).toBe("ok");
    }

    // The units this psi writes run this Node on the installed cli.js, with the flags.
    const out = join(tmp.path, "units");
    const units = await sh(psi, [
      "-c",
      hsmConfig,
      "systemd",
      "install",
      "--mode",
      "native",
      "--output-dir",
      out,
    ]);
    expect(units.code, units.stderr).toBe(0);
    const serve = await readFile(join(out, "psi-secrets.service"), "utf8");
    const cli = join(prefix, "lib", "node_modules", "@psi", "cli", "dist", "cli.js");
    expect(serve).toContain(
      `\nExecStart=${process.execPath} ${NODE_FLAGS.serve.join(" ")} ${cli} serve -c ${hsmConfig}\n`,
    );
  });

  it("npm install -g --ignore-scripts: psi runs; the HSM paths say the addon is missing and how to fix it", {
    timeout: 600_000,
  }, async () => {
    const psi = await npmInstall(join(tmp.path, "npm-noscripts"), ["--ignore-scripts"]);
    expect((await sh(psi, ["--version"])).stdout.trim()).toBe(VERSION);
    const report = await preflight(psi);
    expect(report.code).toBe(1);
    const load = report.steps.find((s) => s.id === "module_load")!;
    expect(load.status).toBe("fail");
    // What is wrong first (the loader's own words only as the detail's tail), then the fix.
    expect(load.detail).toMatch(/^the PKCS#11 addon \(pkcs11js\) is not built for this Node/);
    expect(load.fix).toContain("npm install -g --allow-scripts=pkcs11js @psi/cli");
    expect(load.fix).toContain("pnpm add -g --allow-build=pkcs11js @psi/cli");
  });

  it("pnpm add -g --allow-build=pkcs11js: psi runs and the PKCS#11 addon works", {
    timeout: 600_000,
  }, async () => {
    const home = join(tmp.path, "pnpm");
    const bin = join(home, "bin");
    const env = { PNPM_HOME: bin, PATH: `${bin}:${NODE_BIN}:${process.env["PATH"]}` };
    const added = await sh(
      "pnpm",
      [
        "add",
        "-g",
        `--global-dir=${join(home, "global")}`,
        `--store-dir=${join(home, "store")}`,
        `--config.@psi:registry=${registry.url}`,
        "--allow-build=pkcs11js",
        "@psi/cli",
      ],
      env,
    );
    expect(added.code, added.stderr + added.stdout).toBe(0);
    const psi = join(bin, "psi");
    expect((await sh(psi, ["--version"], env)).stdout.trim()).toBe(VERSION);
    const report = await preflight(psi);
    for (const id of PKCS11_STEPS) {
      const step = report.steps.find((s) => s.id === id)!;
      expect(step.status, `${id}: ${step.detail}`).toBe("ok");
    }
  });
});
