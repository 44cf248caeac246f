// The PSI container image (SPEC §15), tested by running what it contains. Containers
// cannot run here (crun cannot set rlimits), so: build the OCI archive with
// scripts/image.sh (or reuse the one cached by input hash), `podman load` it into an
// isolated storage, `podman image mount` it, and chroot into it with the generated
// quadlets' volumes bind-mounted from temp dirs at the paths the quadlets mount them.
// Every command starts the way the image starts it: its ENTRYPOINT and ENV.
import { type ChildProcess, execFile, execFileSync, spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { chmod, mkdir, readdir, readFile, stat, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { saveCache } from "@psi/cache";
import { createKeyfileCacheBackend, initKeyfile } from "@psi/cache-keyfile";
import { defaultPaths, loadConfig } from "@psi/core";
import { type FakeInfisical, startFakeInfisical } from "@psi/testkit/fake-infisical";
import { type PodmanSandbox, podmanAvailable, podmanSandbox } from "@psi/testkit/podman";
import { requireTool, tempDir } from "@psi/testkit/tmp";
import { unixRequest } from "@psi/testkit/unix-http";
import { NODE_FLAGS, renderDriverConf, renderUnits, unitSettingsFromConfig } from "@psi/unitgen";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const run = promisify(execFile);
const ROOT = join(dirname(new URL(import.meta.url).pathname), "..", "..", "..");
const VERSION = (
  JSON.parse(readFileSync(join(ROOT, "apps/psi/package.json"), "utf8")) as { version: string }
).version;
const IMAGE = `localhost/psi:${VERSION}`;
const PROJECT = { id: "0f3c1a2b-1111-4222-8333-444455556666", environment: "prod" };
const MAPPING = { provider: "infisical", project: "proj", path: "/myapp", key: "DB_PASSWORD" };
const CACHED_VALUE = "cached-from-the-image";
const SETUP_SECRETS = { DB_HOST: "db.internal", API_KEY: "api-key-1" };
// The image's OpenSC, where the config's pkcs11_module defaults to (the Python image's path).
const OPENSC_DEFAULT = "/usr/lib64/pkcs11/opensc-pkcs11.so";

/** The host's absolute path of `command`, or "" (the image's PATH must not find host tools). */
function which(command: string): string {
  try {
    return execFileSync("sh", ["-c", `command -v ${command}`], { encoding: "utf8" }).trim();
  } catch {
    return "";
  }
}
const CHROOT = which("chroot");
const PYTHON = "/usr/bin/python3";
const STANDIN = join(dirname(new URL(import.meta.url).pathname), "systemd-manager-standin.py");

function pythonDbus(): boolean {
  try {
    execFileSync(PYTHON, ["-c", "import dbus, gi"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** The Manager calls the stand-in received since `from` (a line count). */
async function managerCalls(from = 0): Promise<Array<{ method: string; args: unknown[] }>> {
  const text = await readFile(managerLog, "utf8").catch(() => "");
  return text
    .split("\n")
    .filter(Boolean)
    .slice(from)
    .map((line) => JSON.parse(line) as { method: string; args: unknown[] });
}

function rootOnly(): boolean {
  if (process.getuid?.() === 0) return false;
  const message = "the image tests chroot and bind-mount: run them as root";
  if (process.env["CI"]) throw new Error(message);
  console.warn(`SKIPPING: ${message}`);
  return true;
}

const skip =
  rootOnly() ||
  requireTool(CHROOT !== "", "chroot", "coreutils") ||
  requireTool(podmanAvailable(), "podman", "podman") ||
  requireTool(which("mmdebstrap") !== "", "mmdebstrap", "mmdebstrap") ||
  requireTool(which("curl") !== "", "curl", "curl") ||
  requireTool(which("dbus-daemon") !== "", "dbus-daemon", "dbus-daemon") ||
  requireTool(pythonDbus(), "python3 with dbus and gi", "python3-dbus python3-gi");

let tmp: { path: string; cleanup: () => Promise<void> };
let podman: PodmanSandbox;
let mountpoint = "";
let imageEnv: Record<string, string> = {};
let entrypoint: string[] = [];
let fake: FakeInfisical;
let bus: ChildProcess | undefined;
let manager: ChildProcess | undefined;
let managerLog = "";
let serve: ChildProcess | undefined;
let serveLog = "";
const mounts: string[] = [];
/** Container path → host path, for every volume of the generated quadlets. */
const host = new Map<string, string>();
let serveQuadlet = "";
let setupQuadlet = "";

/** Builds the image, or reuses the archive cached under .cache/image. */
async function buildImage(): Promise<string> {
  const tools = join(ROOT, ".tools", "node_modules", ".bin");
  const { stdout } = await run("bash", [join(ROOT, "scripts", "image.sh")], {
    cwd: ROOT,
    env: { ...process.env, PATH: `${dirname(process.execPath)}:${tools}:${process.env["PATH"]}` },
    maxBuffer: 16 * 1024 * 1024,
  });
  const archive = stdout.trim().split("\n").at(-1) ?? "";
  if (!existsSync(archive)) throw new Error(`scripts/image.sh printed no archive: ${stdout}`);
  return archive;
}

async function mount(args: string[], target: string): Promise<void> {
  await run("mount", [...args, target]);
  mounts.push(target);
}

/** Bind-mounts `source` (a directory or a socket) at `target` inside the image. */
async function bind(source: string, target: string, readOnly: boolean): Promise<void> {
  const inside = join(mountpoint, target);
  if ((await run("stat", ["-c", "%F", source])).stdout.includes("socket")) {
    await mkdir(dirname(inside), { recursive: true });
    await writeFile(inside, "");
  } else {
    await mkdir(inside, { recursive: true });
  }
  await mount(["--bind", source], inside);
  if (readOnly) await run("mount", ["-o", "remount,bind,ro", inside]);
}

/** The `Volume=` lines of a quadlet that mount host paths: [host, container, options]. */
function volumes(quadlet: string): Array<[string, string, string]> {
  return [...quadlet.matchAll(/^Volume=(\/[^:\n]+):([^:\n]+)(?::([^\n]*))?$/gm)].map((m) => [
    m[1]!,
    m[2]!,
    m[3] ?? "",
  ]);
}

/** Runs the image's entrypoint with `args` inside the chroot (the quadlet's `Exec=`). */
function psiInImage(
  args: string[],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(CHROOT, [mountpoint, ...entrypoint, ...args], {
      env: imageEnv,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk;
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

async function healthy(socket: string): Promise<boolean> {
  try {
    return (await unixRequest(socket, { path: "/healthz" })).status === 200;
  } catch {
    return false;
  }
}

beforeAll(async () => {
  if (skip) return;
  const archive = await buildImage();
  tmp = await tempDir("psi-image-");
  fake = await startFakeInfisical();
  fake.addUniversalAuth({ clientId: "cid", clientSecret: "csecret-0123" });
  const at = { projectId: PROJECT.id, environment: PROJECT.environment };
  fake.addFolder({ ...at, path: "/setup" });
  for (const [key, value] of Object.entries(SETUP_SECRETS))
    fake.setSecret({ ...at, path: "/setup", key, value });
  // serve answers from the cache first: the live value must not be what comes back.
  fake.setSecret({ ...at, path: MAPPING.path, key: MAPPING.key, value: "live-value" });

  // The host's side of every volume, in temp dirs.
  const etc = join(tmp.path, "etc-psi");
  const state = join(tmp.path, "state");
  const run_ = join(tmp.path, "run-psi");
  const quadlets = join(tmp.path, "quadlets");
  const units = join(tmp.path, "units");
  for (const dir of [etc, state, run_, quadlets, units]) await mkdir(dir, { recursive: true });
  // What the quadlet's StateDirectory/RuntimeDirectoryMode=0700 would give.
  await chmod(state, 0o700);
  await chmod(run_, 0o700);
  // A config at the system default, read by the image's psi as the quadlet's Exec= says.
  const config = [
    "providers:",
    "  infisical:",
    `    api_url: ${fake.url}`,
    "    auth: { method: universal-auth, client_id: cid, client_secret: csecret-0123 }",
    `    projects: { proj: { id: ${PROJECT.id}, environment: ${PROJECT.environment} } }`,
    "workloads:",
    "  web:",
    "    secrets: [{ project: proj, path: /setup }]",
    "cache: { enabled: true, backend: keyfile }",
    "",
  ].join("\n");
  await writeFile(join(etc, "config.yaml"), config, { mode: 0o600 });
  await writeFile(join(etc, "hsm.yaml"), "providers:\n  nitrokeyhsm: {}\n", { mode: 0o600 });
  // The keyfile cache (key at <config_dir>/cache.keyfile, cache at <state_dir>/cache.enc)
  // with one value and its mapping, written by the host's libraries.
  const keyFile = join(etc, "cache.keyfile");
  await initKeyfile({ path: keyFile });
  const backend = createKeyfileCacheBackend({ path: keyFile });
  await backend.open();
  await saveCache({
    path: join(state, "cache.enc"),
    backend,
    fetched: [{ mapping: MAPPING, value: Buffer.from(CACHED_VALUE) }],
    prune: true,
  });
  await backend.close();
  await writeFile(join(state, "id1"), JSON.stringify(MAPPING), { mode: 0o600 });

  // The quadlets `psi systemd install --mode container` writes for this config.
  const paths = defaultPaths("system", {}, 0);
  const loaded = await loadConfig({ path: join(etc, "config.yaml"), env: {}, uid: 0 });
  const settings = unitSettingsFromConfig(loaded.config, paths, "system");
  const files = renderUnits(settings, { mode: "container", image: IMAGE });
  serveQuadlet = files.find((f) => f.path === "psi-secrets.container")!.text;
  setupQuadlet = files.find((f) => f.path === "psi-infisical-setup.container")!.text;

  // The host's Podman (REST API for setup; its shell driver calls serve through the
  // host side of the socket volume) and a system bus for setup's daemon-reload.
  podman = await podmanSandbox(
    join(tmp.path, "podman"),
    renderDriverConf({ socket: join(run_, "psi.sock") }),
  );
  await podman.startService();
  const busSocket = join(tmp.path, "system_bus_socket");
  bus = spawn(
    "dbus-daemon",
    ["--session", "--nofork", `--address=unix:path=${busSocket}`, "--print-address"],
    { stdio: ["ignore", "pipe", "ignore"] },
  );
  await new Promise<void>((resolve, reject) => {
    bus!.stdout!.once("data", () => resolve());
    bus!.once("exit", (code) => reject(new Error(`dbus-daemon exited ${code}`)));
  });
  // No systemd runs here: a stand-in owns org.freedesktop.systemd1 on that bus and logs
  // the Manager calls that psi makes from inside the image.
  managerLog = join(tmp.path, "manager.log");
  manager = spawn(PYTHON, [STANDIN, `unix:path=${busSocket}`, managerLog], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  await new Promise<void>((resolve, reject) => {
    manager!.stdout!.once("data", () => resolve());
    manager!.once("exit", (code) => reject(new Error(`the systemd stand-in exited ${code}`)));
  });
  host.set(paths.configDir, etc);
  host.set(paths.stateDir, state);
  host.set(dirname(paths.socket), run_);
  host.set(paths.systemdDir, quadlets);
  host.set(paths.podmanSocket, podman.socketPath);
  host.set(settings.dbusSocket, busSocket);
  host.set(paths.unitDir, units);

  await run("podman", [...podman.flags, "load", "-q", "-i", archive], { env: podman.env });
  const [inspect] = JSON.parse(
    (await run("podman", [...podman.flags, "image", "inspect", IMAGE], { env: podman.env })).stdout,
  ) as Array<{ Config: { Entrypoint?: string[]; Env?: string[] } }>;
  entrypoint = inspect!.Config.Entrypoint ?? [];
  imageEnv = Object.fromEntries(
    (inspect!.Config.Env ?? []).map((line) => [
      line.slice(0, line.indexOf("=")),
      line.slice(line.indexOf("=") + 1),
    ]),
  );
  imageEnv["HOME"] ??= "/root";
  mountpoint = (
    await run("podman", [...podman.flags, "image", "mount", IMAGE], { env: podman.env })
  ).stdout.trim();
  // What the runtime gives every container: /proc and a few device nodes.
  await mount(["-t", "proc", "proc"], join(mountpoint, "proc"));
  await mount(["-t", "tmpfs", "-o", "mode=0755", "tmpfs"], join(mountpoint, "dev"));
  for (const device of ["null", "zero", "random", "urandom"]) {
    await writeFile(join(mountpoint, "dev", device), "");
    await mount(["--bind", `/dev/${device}`], join(mountpoint, "dev", device));
  }
  // docs/install.md runs `psi systemd install` through the image with the unit dir too.
  await bind(units, paths.unitDir, false);
  for (const quadlet of [serveQuadlet, setupQuadlet]) {
    for (const [source, target, options] of volumes(quadlet)) {
      if (mounts.includes(join(mountpoint, target))) continue;
      const from = host.get(source);
      if (!from) throw new Error(`no host directory for the quadlet volume ${source}`);
      await bind(from, target, options.split(",").includes("ro"));
    }
  }
}, 1_800_000);

afterAll(async () => {
  if (skip) return;
  serve?.kill("SIGTERM");
  manager?.kill("SIGTERM");
  bus?.kill("SIGTERM");
  const unmounted: string[] = [];
  for (const target of mounts.reverse()) {
    try {
      await run("umount", [target]);
      unmounted.push(target);
    } catch {
      await run("umount", ["-l", target]).catch(() => undefined);
    }
  }
  if (mountpoint) {
    await run("podman", [...podman.flags, "image", "unmount", IMAGE], { env: podman.env });
  }
  await podman?.stop();
  await fake?.stop();
  if (!tmp) return;
  const left = (await readFile("/proc/self/mountinfo", "utf8"))
    .split("\n")
    .filter((line) => line.includes(tmp.path));
  // Never delete through a mount that is still there (e.g. a bind of the host's /dev).
  if (left.length > 0) throw new Error(`mounts left under ${tmp.path}:\n${left.join("\n")}`);
  await tmp.cleanup();
}, 120_000);

describe.skipIf(skip)("the PSI image", () => {
  it("starts psi from its ENTRYPOINT on PATH and reports the CLI's version", {
    timeout: 180_000,
  }, async () => {
    expect(entrypoint).toEqual(["psi"]);
    const version = await psiInImage(["--version"]);
    expect(version.stderr).toBe("");
    expect(version.stdout.trim()).toBe(VERSION);
  });

  it("runs Node with the inspector's SIGUSR1 switch off", { timeout: 180_000 }, async () => {
    const wrapper = await readFile(join(mountpoint, "usr/local/bin/psi"), "utf8");
    expect(wrapper).toMatch(/^exec \/usr\/local\/bin\/node --disable-sigusr1 \S+cli\.js "\$@"$/m);
    // serve (the quadlet's Exec=serve) starts with the native units' flags: no re-exec.
    expect(wrapper).toContain(
      `exec /usr/local/bin/node ${NODE_FLAGS.serve.join(" ")} /usr/local/lib/psi/dist/cli.js "$@"`,
    );
  });

  it("holds the code caches of serve and cache status, written by its own Node at build time", async () => {
    // scripts/image.sh runs both once in the new root filesystem, then checks that a
    // second run takes each cache as it is; here: they are there, for this very bundle
    // (hot.cjs, which both commands run from: src/hot-bundle.ts).
    const bundle = await readFile(join(mountpoint, "usr/local/lib/psi/dist/hot.cjs"), "latin1");
    const build = /^\/\/ psi-app-bundle sha256=([0-9a-f]{24})/.exec(bundle)?.[1];
    expect(build).toBeDefined();
    const dir = join(mountpoint, "var/cache/psi/node-compile-cache");
    const { stdout: versionArch } = await run(CHROOT, [
      mountpoint,
      "/usr/local/bin/node",
      "-p",
      "process.version + ' ' + process.arch",
    ]);
    const node = versionArch.trim().split(" ");
    const names = await readdir(dir);
    for (const kind of ["serve", "cache-status"]) {
      const name = `psi-app-${build}-${kind}-${node[0]}-${node[1]}.v8cache`;
      expect(names).toContain(name);
      const info = await stat(join(dir, name));
      expect({ kind, mode: info.mode & 0o777, uid: info.uid }).toEqual({
        kind,
        mode: 0o600,
        uid: 0,
      });
      expect(info.size).toBeGreaterThan(100_000);
    }
    const dirInfo = await stat(dir);
    expect({ mode: dirInfo.mode & 0o777, uid: dirInfo.uid }).toEqual({ mode: 0o700, uid: 0 });
  });

  it("psi serve answers a lookup from the keyfile cache on the mounted socket; HealthCmd passes", {
    timeout: 180_000,
  }, async () => {
    // The quadlet's Exec= with the quadlet's volumes.
    const exec = /^Exec=(.*)$/m.exec(serveQuadlet)![1]!.split(" ");
    expect(exec).toEqual(["serve"]);
    serve = spawn(CHROOT, [mountpoint, ...entrypoint, ...exec], {
      env: imageEnv,
      stdio: ["ignore", "ignore", "pipe"],
    });
    serve.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
      serveLog += chunk;
    });
    const socket = join(host.get("/run/psi")!, "psi.sock");
    await new Promise<void>((resolve, reject) => {
      const check = async () => {
        if (serve!.exitCode !== null) return reject(new Error(`serve exited: ${serveLog}`));
        if (serveLog.includes("Listening on") && (await healthy(socket))) return resolve();
        serve!.stderr!.once("data", check);
      };
      void check();
    });
    // The host's curl on the host side of the socket volume, as the shell driver does it.
    const { stdout } = await run("curl", [
      "-sf",
      "--unix-socket",
      socket,
      "http://localhost/lookup/id1",
    ]);
    expect(stdout).toBe(CACHED_VALUE);
    expect(serveLog).not.toContain(CACHED_VALUE);

    const health = /^HealthCmd=(.*)$/m.exec(serveQuadlet)![1]!;
    expect(health).toBe("curl -sf --unix-socket /run/psi/psi.sock http://localhost/healthz");
    const check = await run(CHROOT, [mountpoint, "/bin/sh", "-c", health], { env: imageEnv });
    expect(check.stdout).toContain("ok");
    await expect(
      run(CHROOT, [mountpoint, "/bin/sh", "-c", health.replace("psi.sock", "nope.sock")], {
        env: imageEnv,
      }),
    ).rejects.toThrow();
  });

  it("psi systemd install --mode container --enable through the image: the quadlets these tests mount, enabled over D-Bus", async () => {
    const before = (await managerCalls()).length;
    const out = await psiInImage([
      "systemd",
      "install",
      "--mode",
      "container",
      "--image",
      IMAGE,
      "--enable",
    ]);
    expect(out.code, out.stderr).toBe(0);
    // No systemctl in the image: the image's dbus-send asks systemd over the mounted bus.
    expect(await managerCalls(before)).toEqual([
      { method: "Reload", args: [] },
      { method: "EnableUnitFiles", args: [["psi-infisical-refresh.timer"], false, false] },
      { method: "Reload", args: [] },
      { method: "StartUnit", args: ["psi-infisical-refresh.timer", "replace"] },
      { method: "StartUnit", args: ["psi-secrets.service", "replace"] },
      { method: "StartUnit", args: ["psi-infisical-setup.service", "replace"] },
    ]);
    const quadlets = host.get("/etc/containers/systemd")!;
    expect(await readFile(join(quadlets, "psi-secrets.container"), "utf8")).toBe(serveQuadlet);
    expect(await readFile(join(quadlets, "psi-infisical-setup.container"), "utf8")).toBe(
      setupQuadlet,
    );
    expect((await readdir(host.get("/etc/systemd/system")!)).sort()).toEqual([
      "psi-infisical-refresh.service",
      "psi-infisical-refresh.timer",
    ]);
  });

  it("psi install --stdout prints the shell driver's containers.conf for the system socket", {
    timeout: 180_000,
  }, async () => {
    const out = await psiInImage(["install", "--stdout"]);
    expect(out.code).toBe(0);
    expect(out.stdout).toBe(renderDriverConf({ socket: "/run/psi/psi.sock" }));
  });

  it("psi setup registers secrets through the host's Podman socket; Podman resolves them through serve", {
    timeout: 180_000,
  }, async () => {
    const exec = /^Exec=(.*)$/m.exec(setupQuadlet)![1]!.split(" ");
    expect(exec).toEqual(["setup", "--provider", "infisical"]);
    const setup = await psiInImage(["--json", ...exec]);
    expect(setup.stderr).not.toContain(SETUP_SECRETS.API_KEY);
    expect(setup.code, setup.stderr).toBe(0);
    for (const [key, value] of Object.entries(SETUP_SECRETS))
      expect((await podman.createWithSecret(`web--${key}`)).toString()).toBe(value);
    // The drop-in went to systemd_dir (the quadlet dir volume).
    expect(await readdir(host.get("/etc/containers/systemd")!)).toContain("web.container.d");
    // daemon-reload went over the mounted system bus with the image's dbus-send.
    expect(setup.stderr).toContain("systemd reloaded (dbus-send)");
    expect((await managerCalls()).at(-1)).toEqual({ method: "Reload", args: [] });
  });

  it("psi nitrokeyhsm preflight loads the image's OpenSC from the default pkcs11_module path", {
    timeout: 180_000,
  }, async () => {
    const out = await psiInImage(["--json", "-c", "/etc/psi/hsm.yaml", "nitrokeyhsm", "preflight"]);
    const report = JSON.parse(out.stdout) as {
      steps: Array<{ id: string; status: string; detail: string }>;
    };
    const step = (id: string) => report.steps.find((s) => s.id === id)!;
    expect(step("module_file").status).toBe("ok");
    expect(step("module_file").detail).toContain(OPENSC_DEFAULT);
    expect(step("module_load").status, step("module_load").detail).toBe("ok");
    // No pcscd, no token: the next check fails, which is the point where hardware starts.
    expect(step("token").status).toBe("fail");
    expect(out.code).not.toBe(0);
  });
});
