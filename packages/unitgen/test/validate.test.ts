import { execFile } from "node:child_process";
import { chmod, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { tempDir } from "@psi/testkit/tmp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { renderSecretsDropIn, renderUnits } from "../src/index.js";
import { FIXTURE_CASES, IMAGE, settingsFor } from "./configs.js";
import { quadletAsService, unknownQuadletKeys } from "./quadlet-keys.js";
import { hasTool } from "./tools.js";

const run = promisify(execFile);
let root: { path: string; cleanup: () => Promise<void> };
beforeAll(async () => {
  root = await tempDir("psi-unitgen-verify-");
});
afterAll(async () => root.cleanup());

/**
 * `systemd-analyze verify --man=no` over every file of one set, in one directory so
 * units that name each other (Requires=, Unit=) resolve. It exits 0 on an unknown key,
 * so any output at all fails the check.
 */
async function verify(
  dir: string,
  files: string[],
  user: boolean,
): Promise<{ code: number; output: string }> {
  const runtime = join(dir, ".runtime");
  await mkdir(runtime, { recursive: true, mode: 0o700 });
  const args = [
    ...(user ? ["--user"] : []),
    "verify",
    "--man=no",
    ...files.map((f) => join(dir, f)),
  ];
  try {
    const { stdout, stderr } = await run("systemd-analyze", args, {
      env: { ...process.env, XDG_RUNTIME_DIR: runtime, HOME: dir, SYSTEMD_LOG_COLOR: "0" },
    });
    return { code: 0, output: stdout + stderr };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? 1, output: `${e.stdout ?? ""}${e.stderr ?? ""}` };
  }
}

async function executable(dir: string, name: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, "#!/bin/sh\nexit 0\n");
  await chmod(path, 0o755);
  return path;
}

const analyze = hasTool("systemd-analyze", "systemd-analyze", "systemd");

describe("systemd-analyze verify", () => {
  for (const testCase of FIXTURE_CASES) {
    it.skipIf(!analyze)(`native units pass: ${testCase.name}`, async () => {
      const dir = join(root.path, `native-${testCase.name}`);
      await mkdir(dir, { recursive: true });
      // systemd checks the executable: Node (the script it runs is an argument).
      const nodePath = await executable(dir, "node");
      const files = renderUnits(await settingsFor(testCase), {
        mode: "native",
        nodePath,
        psiPath: join(dir, "cli.js"),
        socketActivation: testCase.socketActivation,
      });
      for (const file of files) await writeFile(join(dir, file.path), file.text);
      const result = await verify(
        dir,
        files.map((f) => f.path),
        testCase.scope === "user",
      );
      expect(result.output).toBe("");
      expect(result.code).toBe(0);
    });

    it.skipIf(!analyze)(`systemd sections of quadlets pass: ${testCase.name}`, async () => {
      const dir = join(root.path, `container-${testCase.name}`);
      await mkdir(dir, { recursive: true });
      const podman = await executable(dir, "podman");
      const files = renderUnits(await settingsFor(testCase), {
        mode: "container",
        image: IMAGE,
        socketActivation: testCase.socketActivation,
      });
      const names: string[] = [];
      for (const file of files) {
        const name = file.path.replace(/\.container$/, ".service");
        const text =
          file.kind === "quadlet" ? quadletAsService(file.text, `${podman} run`) : file.text;
        await writeFile(join(dir, name), text);
        names.push(name);
      }
      const result = await verify(dir, names, testCase.scope === "user");
      expect(result.output).toBe("");
      expect(result.code).toBe(0);
    });
  }

  it.skipIf(!analyze)(
    "the check fails on an unknown directive and on a non-executable ExecStart",
    async () => {
      const dir = join(root.path, "negative");
      await mkdir(dir, { recursive: true });
      await writeFile(join(dir, "node"), "not executable");
      const [serve] = renderUnits(await settingsFor(FIXTURE_CASES[0]!), {
        mode: "native",
        nodePath: join(dir, "node"),
        psiPath: join(dir, "cli.js"),
      });
      await writeFile(
        join(dir, "psi-secrets.service"),
        serve!.text.replace("[Install]", "ProtectEverything=yes\n\n[Install]"),
      );
      const result = await verify(dir, ["psi-secrets.service"], false);
      expect(result.output).toContain("Unknown key 'ProtectEverything'");
      expect(result.output).toContain("is not executable");
    },
  );
});

describe("quadlet keys (podman-systemd.unit(5))", () => {
  for (const testCase of FIXTURE_CASES) {
    it(`every quadlet uses documented keys only: ${testCase.name}`, async () => {
      const files = renderUnits(await settingsFor(testCase), {
        mode: "container",
        image: IMAGE,
        socketActivation: testCase.socketActivation,
      });
      const quadlets = files.filter((f) => f.kind === "quadlet");
      expect(quadlets.length).toBeGreaterThan(1);
      for (const file of quadlets) expect(unknownQuadletKeys(file.text), file.path).toEqual([]);
    });
  }

  it("the workload drop-in uses documented keys only", () => {
    const dropIn = renderSecretsDropIn({
      workload: "myapp",
      keys: ["A"],
      dependsOn: ["x.service"],
    });
    expect(unknownQuadletKeys(dropIn.text)).toEqual([]);
  });

  it("an unknown key is reported", () => {
    expect(
      unknownQuadletKeys("[Container]\nImage=x\nReadOnlyRootfs=true\n[Install]\nAlso=y\n"),
    ).toEqual(["[Container] ReadOnlyRootfs", "[Install] Also"]);
  });
});
