// `psi nitrokeyhsm setup-pcscd --build-dir D --systemd-dir Q [--build-only]`, the Python
// psi's flags: the Containerfile goes to D and a real Podman builds the image from it
// (FROM scratch + D/rootfs.tar, no registry); the quadlets go to Q unless --build-only.
// The real pcscd root filesystem (scripts/pcscd-rootfs.sh) is built in pcscd-image.test.ts.
import { execFileSync } from "node:child_process";
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { isolatedPodmanEnv, podmanAvailable } from "@psi/testkit/podman";
import { requireTool, tempDir } from "@psi/testkit/tmp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runPsi } from "./run-psi.js";

const skip = requireTool(podmanAvailable(), "podman", "podman");

describe.skipIf(skip)("setup-pcscd builds the image (Python flags)", () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  let env: Record<string, string>;
  let build: string;
  beforeAll(async () => {
    dir = await tempDir("psi-pcscd-build-");
    env = await isolatedPodmanEnv(dir.path);
    await writeFile(
      join(dir.path, "config.yaml"),
      "providers: { nitrokeyhsm: { pcscd_volume: hsm-sock } }\n",
    );
    env["PSI_CONFIG"] = join(dir.path, "config.yaml");
    // A root filesystem stand-in: one file the test finds in the built image.
    build = join(dir.path, "build");
    await mkdir(join(dir.path, "tree", "etc"), { recursive: true });
    await writeFile(join(dir.path, "tree", "etc", "marker"), "from rootfs.tar\n");
    await mkdir(build);
    execFileSync("tar", ["-C", join(dir.path, "tree"), "-cf", join(build, "rootfs.tar"), "."]);
  });
  afterAll(async () => {
    await dir?.cleanup();
  });

  const podman = (args: string[]) =>
    execFileSync("podman", args, { env, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });

  it("--build-dir D --systemd-dir Q --build-only: Containerfile in D, image built, no quadlets", async () => {
    const quadlets = join(dir.path, "quadlets");
    const run = await runPsi(
      [
        "nitrokeyhsm",
        "setup-pcscd",
        "--build-dir",
        build,
        "--systemd-dir",
        quadlets,
        "--build-only",
      ],
      { env },
    );
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(`wrote ${join(build, "Containerfile")}`);
    expect(run.stdout).toContain("built localhost/psi-pcscd:latest");
    const containerfile = await readFile(join(build, "Containerfile"), "utf8");
    expect(containerfile).toContain("FROM scratch\nADD rootfs.tar /\n");
    expect(containerfile).toContain('CMD ["/usr/sbin/pcscd", "--foreground"]');
    await expect(readdir(quadlets)).rejects.toThrow();
    // The image is in Podman's store, with the file from rootfs.tar and pcscd as its command.
    const config = JSON.parse(podman(["image", "inspect", "localhost/psi-pcscd:latest"]));
    expect(config[0].Config.Cmd).toEqual(["/usr/sbin/pcscd", "--foreground"]);
    const mount = podman(["image", "mount", "localhost/psi-pcscd:latest"]).trim();
    try {
      expect(await readFile(join(mount, "etc", "marker"), "utf8")).toBe("from rootfs.tar\n");
    } finally {
      podman(["image", "unmount", "localhost/psi-pcscd:latest"]);
    }
  });

  it("without --build-only the quadlets go to --systemd-dir; --image names the image", async () => {
    const quadlets = join(dir.path, "quadlets-2");
    const run = await runPsi(
      [
        "nitrokeyhsm",
        "setup-pcscd",
        "--build-dir",
        build,
        "--systemd-dir",
        quadlets,
        "--image",
        "localhost/pcscd:test",
      ],
      { env },
    );
    expect(run.code, run.stderr).toBe(0);
    expect((await readdir(quadlets)).sort()).toEqual(["hsm-sock.volume", "pcscd.container"]);
    expect(await readFile(join(quadlets, "pcscd.container"), "utf8")).toContain(
      "Image=localhost/pcscd:test",
    );
    expect(podman(["image", "exists", "localhost/pcscd:test"])).toBe("");
    // The build step is done, so it is not listed among the commands left to run.
    expect(run.stdout).not.toMatch(/^\s+podman build/m);
    // As the Python psi, it reloads systemd after writing quadlets (no systemd runs here).
    expect(run.stdout).toMatch(/^systemd: not reloaded: /m);
  });

  it("without rootfs.tar the Fedora Containerfile is used; no registry here: exit 1 with a hint", async () => {
    const empty = join(dir.path, "no-rootfs");
    await mkdir(empty);
    const run = await runPsi(
      [
        "nitrokeyhsm",
        "setup-pcscd",
        "--build-dir",
        empty,
        "--build-only",
        "--image",
        "localhost/broken:x",
      ],
      { env },
    );
    expect(run.code).toBe(1);
    expect(run.stderr).toContain("podman build -t localhost/broken:x");
    expect(run.stderr).toContain("hint: put a root filesystem of Debian's pcscd into");
    expect(await readFile(join(empty, "Containerfile"), "utf8")).toContain(
      "FROM registry.fedoraproject.org/fedora-minimal:latest",
    );
  });

  it("--mode host with the build flags is a usage error", async () => {
    const run = await runPsi(
      ["nitrokeyhsm", "setup-pcscd", "--mode", "host", "--build-dir", build],
      { env },
    );
    expect(run.code).toBe(2);
  });
});
