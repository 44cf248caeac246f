// The real pcscd image: scripts/pcscd-rootfs.sh puts Debian's pcscd and libccid into a
// root filesystem (mmdebstrap), `psi nitrokeyhsm setup-pcscd --build-dir D --build-only`
// builds it FROM scratch with Podman, and the image's own command runs in a chroot of the
// mounted image (TESTING.md: `podman run` cannot run here). Slow: about a minute or more
// for mmdebstrap; PSI_PCSCD_ROOTFS_DIR names a directory that already holds a rootfs.tar
// from the script, to skip that step when iterating.
import { execFileSync, spawnSync } from "node:child_process";
import { copyFile, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { isolatedPodmanEnv, podmanAvailable } from "@psi/testkit/podman";
import { requireTool, tempDir } from "@psi/testkit/tmp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runPsi } from "./run-psi.js";

const SCRIPT = join(import.meta.dirname, "..", "..", "..", "scripts", "pcscd-rootfs.sh");
const skip =
  requireTool(podmanAvailable(), "podman", "podman") ||
  requireTool(spawnSync("mmdebstrap", ["--version"]).status === 0, "mmdebstrap", "mmdebstrap");

describe.skipIf(skip)("the pcscd image from Debian packages", () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  let env: Record<string, string>;
  beforeAll(async () => {
    dir = await tempDir("psi-pcscd-image-");
    const build = join(dir.path, "build");
    const prebuilt = process.env["PSI_PCSCD_ROOTFS_DIR"];
    if (prebuilt) {
      execFileSync("mkdir", ["-p", build]);
      await copyFile(join(prebuilt, "rootfs.tar"), join(build, "rootfs.tar"));
    } else {
      execFileSync("bash", [SCRIPT, build], { stdio: ["ignore", "ignore", "pipe"] });
    }
    env = await isolatedPodmanEnv(join(dir.path, "podman"));
  }, 900_000);
  afterAll(async () => {
    await dir?.cleanup();
  });

  it("setup-pcscd builds it; its command is Debian's pcscd, with the CCID driver", async () => {
    const run = await runPsi(
      ["nitrokeyhsm", "setup-pcscd", "--build-dir", join(dir.path, "build"), "--build-only"],
      { env },
    );
    expect(run.code, run.stderr).toBe(0);
    const podman = (args: string[]) => execFileSync("podman", args, { env, encoding: "utf8" });
    const image = "localhost/psi-pcscd:latest";
    const cmd = JSON.parse(podman(["image", "inspect", image, "--format", "{{json .Config.Cmd}}"]));
    expect(cmd[0]).toBe("/usr/sbin/pcscd");
    const mount = podman(["image", "mount", image]).trim();
    try {
      // The image's own argv with --version: every option it passes is one pcscd knows.
      const version = execFileSync("chroot", [mount, ...cmd, "--version"], { encoding: "utf8" });
      expect(version).toMatch(/^pcsc-lite version \d+\.\d+/);
      const driver = join(mount, "usr", "lib", "pcsc", "drivers", "ifd-ccid.bundle", "Contents");
      expect((await stat(join(driver, "Linux", "libccid.so"))).isFile()).toBe(true);
      // Nitrokey HSM 2 (USB vendor 0x20a0) is among the readers libccid drives; the bundle's
      // Info.plist is an absolute symlink to /etc/libccid_Info.plist inside the image.
      const plist = await readFile(join(mount, "etc", "libccid_Info.plist"), "utf8");
      expect(plist.toLowerCase()).toContain("0x20a0");
    } finally {
      podman(["image", "unmount", image]);
    }
  }, 300_000);
});
