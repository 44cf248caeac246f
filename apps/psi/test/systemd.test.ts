import { readdir, readFile, writeFile } from "node:fs/promises";
import { join, relative } from "node:path";
import { PassThrough } from "node:stream";
import { loadConfig } from "@psi/core";
import { tempDir } from "@psi/testkit/tmp";
import { renderUnits, unitSettingsFromConfig } from "@psi/unitgen";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { runCli } from "../src/main.js";

let dir: { path: string; cleanup: () => Promise<void> };
beforeEach(async () => {
  dir = await tempDir("psi-systemd-cli-");
});
afterEach(async () => dir.cleanup());

const CONFIG = `providers:
  infisical:
    auth: { method: universal-auth, client_id: id, client_secret: secret }
    projects:
      myproject: { id: 0b7c8d1e-0000-4000-8000-000000000000 }
  nitrokeyhsm: {}
workloads:
  myapp:
    secrets:
      - { project: myproject, path: /myapp }
cache: { backend: tpm }
`;

async function psi(argv: string[], options: { uid?: number; env?: Record<string, string> } = {}) {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = "";
  let err = "";
  stdout.on("data", (c: Buffer) => {
    out += c;
  });
  stderr.on("data", (c: Buffer) => {
    err += c;
  });
  const env = {
    PATH: process.env["PATH"] ?? "/usr/bin:/bin",
    HOME: join(dir.path, "home"),
    XDG_RUNTIME_DIR: join(dir.path, "xdg"),
    ...options.env,
  };
  const code = await runCli(argv, {
    io: { stdout, stderr, stdin: new PassThrough() },
    env,
    uid: options.uid ?? 0,
  });
  return { code, out, err };
}

async function tree(root: string): Promise<string[]> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => relative(root, join(e.parentPath, e.name)))
    .sort();
}

async function writeConfig(extra = ""): Promise<string> {
  const file = join(dir.path, "config.yaml");
  await writeFile(
    file,
    `state_dir: ${join(dir.path, "state")}\nsystemd_dir: ${join(dir.path, "quadlets")}\n${extra}${CONFIG}`,
    // it holds a client_secret: 0600, as psi asks of such files
    { mode: 0o600 },
  );
  return file;
}

describe("psi systemd install", () => {
  for (const mode of ["native", "container"] as const) {
    it(`--output-dir writes exactly the generated files and nothing else (${mode})`, async () => {
      const config = await writeConfig();
      const out = join(dir.path, "out");
      const before = await tree(dir.path);
      const image = mode === "container" ? ["--image", "ghcr.io/example/psi:1"] : [];
      const result = await psi([
        "-c",
        config,
        "systemd",
        "install",
        "--mode",
        mode,
        ...image,
        "--output-dir",
        out,
        "--psi-path",
        "/usr/local/lib/psi/dist/cli.js",
        "--node-path",
        "/usr/local/bin/node",
      ]);
      expect(result.err).toBe("");
      expect(result.code).toBe(0);
      const loaded = await loadConfig({ path: config, env: {}, uid: 0 });
      const expected = renderUnits(
        unitSettingsFromConfig(loaded.config, loaded.paths, loaded.scope),
        {
          mode,
          image: "ghcr.io/example/psi:1",
          nodePath: "/usr/local/bin/node",
          psiPath: "/usr/local/lib/psi/dist/cli.js",
        },
      );
      expect(await tree(out)).toEqual(expected.map((f) => f.path).sort());
      for (const file of expected)
        expect(await readFile(join(out, file.path), "utf8")).toBe(file.text);
      // Nothing outside D: no quadlet dir, no unit dir created.
      expect((await tree(dir.path)).filter((f) => !f.startsWith("out/"))).toEqual(before);
      expect(result.out).toContain(`wrote ${join(out, "psi-secrets.")}`);
    });
  }

  it("--mode container without --image is a usage error (exit 2) and writes nothing", async () => {
    const config = await writeConfig();
    const out = join(dir.path, "out");
    const result = await psi([
      "-c",
      config,
      "systemd",
      "install",
      "--mode",
      "container",
      "--output-dir",
      out,
    ]);
    expect(result.code).toBe(2);
    expect(result.err).toContain("--image");
    expect(await tree(dir.path)).toEqual(["config.yaml"]);
  });

  it("--output-dir with --enable is a usage error", async () => {
    const config = await writeConfig();
    const result = await psi([
      "-c",
      config,
      "systemd",
      "install",
      "--mode",
      "native",
      "--output-dir",
      join(dir.path, "o"),
      "--enable",
    ]);
    expect(result.code).toBe(2);
  });

  it("a missing or unknown --mode is a usage error", async () => {
    const config = await writeConfig();
    expect((await psi(["-c", config, "systemd", "install"])).code).toBe(2);
    expect((await psi(["-c", config, "systemd", "install", "--mode", "docker"])).code).toBe(2);
  });

  it("user scope: quadlets to systemd_dir, units to ~/.config/systemd/user; no systemd → warning, exit 0", async () => {
    const config = await writeConfig();
    const result = await psi(
      ["-c", config, "--json", "systemd", "install", "--mode", "container", "--image", "img:1"],
      { uid: 1000 },
    );
    expect(result.code).toBe(0);
    expect(result.err).toMatch(/daemon-reload|systemctl not found/);
    const report = JSON.parse(result.out);
    expect(report.reloaded).toBe(false);
    expect(await tree(join(dir.path, "quadlets"))).toEqual([
      "psi-infisical-setup.container",
      "psi-nitrokeyhsm-setup.container",
      "psi-secrets.container",
    ]);
    expect(await tree(join(dir.path, "home/.config/systemd/user"))).toEqual([
      "psi-infisical-refresh.service",
      "psi-infisical-refresh.timer",
    ]);
    expect(
      await readFile(
        join(dir.path, "home/.config/systemd/user/psi-infisical-refresh.service"),
        "utf8",
      ),
    ).toContain("ExecStart=/usr/bin/systemctl --user restart psi-infisical-setup.service");
  });

  it("without systemctl on PATH: warning, files still installed", async () => {
    const config = await writeConfig();
    const result = await psi(
      ["-c", config, "systemd", "install", "--mode", "native", "--psi-path", "/usr/bin/psi"],
      {
        uid: 1000,
        env: { PATH: join(dir.path, "empty-bin") },
      },
    );
    expect(result.code).toBe(0);
    expect(result.err).toContain("neither systemctl nor dbus-send found");
    expect(await tree(join(dir.path, "home/.config/systemd/user"))).toContain(
      "psi-secrets.service",
    );
  });
});
