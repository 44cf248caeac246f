// `psi setup --dry-run` compares each Podman secret's driver options with what a secret
// created now would get: the installed containers.conf.d/psi.conf when there is one (what
// Podman actually holds, e.g. after `psi install --socket`), or `--socket`/`PSI_SOCKET`
// rendered as psi install would. A non-default socket must not make everything stale.
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { DryRunReport } from "@psi/setup";
import { parseDriverOptions } from "@psi/setup";
import {
  type PodmanSandbox,
  podmanAvailable,
  podmanSandbox,
  stateDirDriverConf,
} from "@psi/testkit/podman";
import { requireTool, tempDir } from "@psi/testkit/tmp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runPsi } from "./run-psi.js";

const skip = requireTool(podmanAvailable(), "podman", "podman");

describe.skipIf(skip)("setup --dry-run and the driver options Podman holds", () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  let podman: PodmanSandbox;
  let env: Record<string, string>;
  const custom = "/run/custom-psi/psi.sock";

  beforeAll(async () => {
    dir = await tempDir("psi-setup-socket-");
    const stateDir = join(dir.path, "state");
    await mkdir(stateDir, { recursive: true });
    env = {
      HOME: join(dir.path, "home"),
      XDG_RUNTIME_DIR: join(dir.path, "xdg"),
      PATH: process.env["PATH"] ?? "/usr/bin:/bin",
      PSI_CONFIG: join(dir.path, "config.yaml"),
    };
    await writeFile(env["PSI_CONFIG"]!, `state_dir: ${stateDir}\nworkloads: {}\n`);
    // psi install --socket writes the conf Podman reads; the sandbox's Podman uses the same
    // options, except that store/lookup keep mappings in state_dir (no psi serve is needed).
    const install = await runPsi(["install", "--socket", custom], { env });
    expect(install.code, install.stderr).toBe(0);
    const confPath = join(env["HOME"]!, ".config", "containers", "containers.conf.d", "psi.conf");
    const installed = parseDriverOptions(await readFile(confPath, "utf8"));
    expect(installed["lookup"]).toContain(custom);
    const sandboxConf = stateDirDriverConf(stateDir);
    podman = await podmanSandbox(join(dir.path, "podman"), sandboxConf);
    // What Podman holds is what the installed file says: make them the same text.
    await writeFile(confPath, sandboxConf);
    await podman.startService();
    const mapping = JSON.stringify({ provider: "infisical", project: "p", path: "/a", key: "K" });
    await podman.createSecret("app--K", mapping);
  }, 60_000);
  afterAll(async () => {
    await podman?.stop();
    await dir?.cleanup();
  });

  const dryRun = async (args: string[], extra: Record<string, string> = {}) => {
    const run = await runPsi(
      ["--json", "setup", "--dry-run", "--podman-socket", podman.socketPath, ...args],
      { env: { ...env, ...extra } },
    );
    expect(run.code, run.stderr).toBe(0);
    const report = JSON.parse(run.stdout) as DryRunReport & { counts: Record<string, number> };
    return report.counts;
  };

  it("without --socket: compared with the installed psi.conf, the secret is managed", async () => {
    expect(await dryRun([])).toEqual({ managed: 1, stale_opts: 0, orphaned: 0 });
  });

  it("with --socket or PSI_SOCKET: compared with what psi install would write for it", async () => {
    expect(await dryRun(["--socket", custom])).toEqual({
      managed: 0,
      stale_opts: 1,
      orphaned: 0,
    });
    expect(await dryRun([], { PSI_SOCKET: custom })).toEqual({
      managed: 0,
      stale_opts: 1,
      orphaned: 0,
    });
  });
});
