// installUnits (`psi systemd install`) without the CLI: files land where a real systemd
// user manager (@psi/testkit/systemd, private bus and namespace) loads them, and enable
// starts them, through systemctl or, without it, dbus-send. Every path is under a temp dir.
import { mkdir, readdir, readFile, symlink, watch, writeFile } from "node:fs/promises";
import { dirname, join, relative } from "node:path";
import { isPsiError, loadConfig } from "@psi/core";
import { installUnits, requestSystemd } from "@psi/ops";
import { recordingLogger } from "@psi/testkit/logger";
import {
  startUserManager,
  USER_MANAGER_PACKAGES,
  type UserManager,
  userManagerAvailable,
} from "@psi/testkit/systemd";
import { requireTool, tempDir } from "@psi/testkit/tmp";
import { onPath } from "@psi/testkit/tpm";
import { renderUnits, unitSettingsFromConfig } from "@psi/unitgen";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";

const uid = 1000;

/** Stands in for psi's cli.js: records each run; `serve` stays up, `setup` exits `SETUP_EXIT`. */
const FAKE_CLI = `
const { appendFileSync } = require("node:fs");
appendFileSync(process.env.RUNS ?? __dirname + "/runs", process.argv.slice(2).join(" ") + "\\n");
if (process.argv.includes("serve")) setInterval(() => {}, 1 << 30);
else process.exitCode = Number(require("node:fs").readFileSync(__dirname + "/setup-exit", "utf8"));
`;

async function writeConfig(root: string, env: Record<string, string>) {
  const file = join(root, "config.yaml");
  await writeFile(
    file,
    `state_dir: ${join(root, "state")}\nsystemd_dir: ${join(root, "quadlets")}\nproviders:\n  nitrokeyhsm: {}\n`,
  );
  return loadConfig({ path: file, env, uid });
}

async function tree(root: string): Promise<string[]> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true });
  return entries
    .filter((entry) => entry.isFile())
    .map((entry) => relative(root, join(entry.parentPath, entry.name)))
    .sort();
}

describe("installUnits with outputDir", () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  beforeEach(async () => {
    dir = await tempDir("psi-ops-units-");
  });
  afterEach(async () => dir.cleanup());

  it("writes exactly the rendered files under the directory and asks systemd nothing", async () => {
    const env = { HOME: join(dir.path, "home"), XDG_RUNTIME_DIR: join(dir.path, "run") };
    const loaded = await writeConfig(dir.path, env);
    const before = await tree(dir.path);
    const out = join(dir.path, "out");
    const logger = recordingLogger();
    const result = await installUnits({
      loaded,
      env,
      uid,
      logger,
      mode: "container",
      image: "ghcr.io/example/psi:1",
      psiPath: "/unused/cli.js",
      outputDir: out,
    });
    const expected = renderUnits(
      unitSettingsFromConfig(loaded.config, loaded.paths, loaded.scope),
      {
        mode: "container",
        image: "ghcr.io/example/psi:1",
      },
    );
    expect(result).toEqual({ files: expected.map((file) => join(out, file.path)) });
    for (const file of expected)
      expect(await readFile(join(out, file.path), "utf8")).toBe(file.text);
    expect((await tree(dir.path)).filter((path) => !path.startsWith("out/"))).toEqual(before);
    expect(logger.lines).toEqual([]);
  });

  it("refuses enable with outputDir and writes nothing", async () => {
    const env = { HOME: join(dir.path, "home") };
    const loaded = await writeConfig(dir.path, env);
    const options = { loaded, env, uid, logger: recordingLogger(), psiPath: "/p/cli.js" };
    await expect(
      installUnits({ ...options, mode: "native", outputDir: join(dir.path, "o"), enable: true }),
    ).rejects.toMatchObject({ code: "systemd.output_dir_enable" });
    expect(await tree(dir.path)).toEqual(["config.yaml"]);
  });

  it("with no systemctl and no dbus-send: files installed, the reload reported missing and warned", async () => {
    const env = { HOME: join(dir.path, "home"), PATH: join(dir.path, "empty-bin") };
    const loaded = await writeConfig(dir.path, env);
    const logger = recordingLogger();
    const result = await installUnits({
      loaded,
      env,
      uid,
      logger,
      mode: "native",
      psiPath: "/usr/lib/psi/cli.js",
      nodePath: "/usr/bin/node",
    });
    expect(result.reload).toEqual({
      ok: false,
      missing: true,
      detail: "neither systemctl nor dbus-send is installed",
    });
    expect(result.enabled).toBeUndefined();
    expect(await tree(join(dir.path, "home/.config/systemd/user"))).toEqual([
      "psi-nitrokeyhsm-setup.service",
      "psi-secrets.service",
    ]);
    expect(logger.lines.map((line) => [line.level, line.fields?.["event"]])).toEqual([
      ["warn", "systemd.reload_failed"],
    ]);
    expect(logger.lines[0]?.msg).toContain("neither systemctl nor dbus-send found");
  });
});

const skip = requireTool(userManagerAvailable(), "systemd --user", USER_MANAGER_PACKAGES);

describe.skipIf(skip)("installUnits against a real systemd user manager", () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  let manager: UserManager;
  let cli: string;

  beforeAll(async () => {
    dir = await tempDir("psi-ops-units-manager-");
    manager = await startUserManager(join(dir.path, "manager"));
    // psi puts user units in ~/.config/systemd/user; the manager reads $XDG_CONFIG_HOME's.
    await symlink(dirname(dirname(manager.unitDir)), join(dir.path, "manager", "home", ".config"));
    cli = join(dir.path, "cli.cjs");
    await writeFile(cli, FAKE_CLI);
  }, 60_000);
  afterAll(async () => {
    await manager?.stop();
    await dir?.cleanup();
  });

  /** A fresh configuration under `name`, native units running the fake cli; never awaited here. */
  async function install(name: string, env: Record<string, string>, setupExit: number) {
    const root = join(dir.path, name);
    await mkdir(root, { recursive: true });
    await writeFile(join(dir.path, "setup-exit"), String(setupExit));
    await writeFile(join(dir.path, "runs"), "");
    const loaded = await writeConfig(root, manager.env);
    const logger = recordingLogger();
    const result = installUnits({
      loaded,
      env,
      uid,
      logger,
      mode: "native",
      psiPath: cli,
      enable: true,
    });
    return { result, logger };
  }

  /** Resolves once the fake cli has recorded a run with `args` (runs append to the file). */
  async function ran(args: string): Promise<void> {
    const file = join(dir.path, "runs");
    const has = async () => (await readFile(file, "utf8")).split("\n").includes(args);
    const abort = new AbortController();
    const changes = watch(file, { signal: abort.signal });
    try {
      if (await has()) return;
      for await (const _ of changes) if (await has()) return;
    } finally {
      abort.abort();
    }
  }

  afterEach(async () => {
    await manager.systemctl("disable", "--now", "psi-secrets.service").catch(() => "");
  });

  it("writes to the manager's unit dir, reloads, enables and starts serve and setup", async () => {
    const { result, logger } = await install("systemctl", manager.env, 0);
    const done = await result;
    expect(logger.lines).toEqual([]);
    expect(done.reload).toEqual({ ok: true, missing: false, detail: "" });
    expect(done.enabled).toEqual(["psi-secrets.service", "psi-nitrokeyhsm-setup.service"]);
    expect(done.started).toEqual([]);
    expect(await tree(manager.unitDir)).toEqual([
      "psi-nitrokeyhsm-setup.service",
      "psi-secrets.service",
    ]);
    expect(await manager.property("psi-secrets.service", "ActiveState")).toBe("active");
    expect(await manager.property("psi-secrets.service", "UnitFileState")).toBe("enabled");
    // systemctl waited for the oneshot, so it has run to completion.
    expect(await manager.property("psi-nitrokeyhsm-setup.service", "Result")).toBe("success");
    expect(await readFile(join(dir.path, "runs"), "utf8")).toContain(
      `setup --provider nitrokeyhsm -c ${join(dir.path, "systemctl", "config.yaml")}`,
    );
  });

  it("a unit that fails to start fails the install with systemd.enable_failed", async () => {
    const { result, logger } = await install("failing", manager.env, 3);
    const error = await result.catch((failure: unknown) => failure);
    expect(isPsiError(error, "systemd.enable_failed")).toBe(true);
    expect((error as Error).message).toContain(
      "systemctl enable --now psi-secrets.service psi-nitrokeyhsm-setup.service failed: ",
    );
    expect(logger.lines).toEqual([]);
    expect(await manager.property("psi-nitrokeyhsm-setup.service", "Result")).toBe("exit-code");
  });

  it("without systemctl, asks the manager over D-Bus with dbus-send", async () => {
    if (requireTool(onPath("dbus-send"), "dbus-send", "dbus-bin")) return;
    const bin = join(dir.path, "dbus-only");
    await mkdir(bin, { recursive: true });
    await symlink("/usr/bin/dbus-send", join(bin, "dbus-send"));
    const env = { ...manager.env, PATH: bin };
    const { result, logger } = await install("dbus", env, 0);
    const done = await result;
    expect(logger.lines).toEqual([]);
    expect(done.reload).toEqual({ ok: true, missing: false, detail: "" });
    // EnableUnitFiles is synchronous; StartUnit only queues the jobs: wait for their runs.
    expect(await manager.property("psi-secrets.service", "UnitFileState")).toBe("enabled");
    await ran(`serve -c ${join(dir.path, "dbus", "config.yaml")}`);
    await ran(`setup --provider nitrokeyhsm -c ${join(dir.path, "dbus", "config.yaml")}`);
    // A manager call that fails reports what dbus-send said.
    const refused = await requestSystemd({ scope: "user", env, args: ["start", "nope.service"] });
    expect(refused).toMatchObject({ ok: false, missing: false });
    expect(refused.detail).toContain("nope.service");
  });
});
