import { execFile } from "node:child_process";
import { access } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { Env, LoadedConfig } from "@psi/core";
import { defaultPaths, ensureDir, PsiError, scopeForUid, writeFileAtomic } from "@psi/core";
import type { PcscdFile } from "@psi/provider-nitrokeyhsm";
import type { DaemonReloadOutcome } from "@psi/setup";

// `psi nitrokeyhsm setup-pcscd` as a library: what a host needs for pcscd (the volume
// quadlet and a pcscd container, or the host pcscd's volume and polkit rule), placed,
// optionally written, the image built, and systemd reloaded.

/** The Python psi's default build directory of `setup-pcscd`. */
export const PCSCD_BUILD_DIR = "/opt/psi/pcscd";

/** Options of {@link setupPcscd}. */
export interface PcscdSetupOptions {
  /** The configuration, or undefined without one (the scope's defaults are used). */
  loaded: LoadedConfig | undefined;
  env: Env;
  uid: number;
  mode: "container" | "host";
  /** The pcscd container's image (default: the provider's PCSCD_IMAGE). */
  image?: string | undefined;
  /** Write the files (implied by the directories and the build options). */
  write?: boolean | undefined;
  /** Write every file into this directory instead of where it belongs. */
  outputDir?: string | undefined;
  /** Write DIR/Containerfile and build the image from DIR. */
  buildDir?: string | undefined;
  /** Where the quadlets go (default: the scope's systemd_dir). */
  systemdDir?: string | undefined;
  /** Build the image; write no quadlets. */
  buildOnly?: boolean | undefined;
}

/** One file of the pcscd setup and the path it goes to. */
export type PlacedPcscdFile = PcscdFile & { path: string };

/** What {@link setupPcscd} rendered and did. */
export interface PcscdSetupResult {
  volume: string;
  mode: "container" | "host";
  image: string;
  files: PlacedPcscdFile[];
  /** True when the files were written (else they are only rendered). */
  written: boolean;
  /** The directory the image was built from, when one was. */
  builtFrom?: { dir: string; fromRootfs: boolean };
  daemonReload?: DaemonReloadOutcome;
  /** What the operator still runs (minus what was done here). */
  commands: string[];
  notes: string[];
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

/** `podman build -t IMAGE -f DIR/Containerfile DIR`; its own stderr is the error's detail. */
async function buildPcscdImage(env: Env, dir: string, image: string): Promise<void> {
  const argv = ["build", "-t", image, "-f", join(dir, "Containerfile"), dir];
  const failure = await new Promise<string | undefined>((resolve) => {
    execFile(
      "podman",
      argv,
      { env: { ...env }, maxBuffer: 16 * 1024 * 1024 },
      (error, _stdout, stderr) =>
        resolve(
          error ? `${stderr.trim().split("\n").slice(-5).join("\n") || error.message}` : undefined,
        ),
    );
  });
  if (failure !== undefined) {
    throw new PsiError(
      "nitrokeyhsm.pcscd_build_failed",
      `podman ${argv.join(" ")} failed:\n${failure}`,
      {
        hint: `put a root filesystem of Debian's pcscd into ${dir}/rootfs.tar (scripts/pcscd-rootfs.sh ${dir}) to build without a registry`,
      },
    );
  }
}

/**
 * Renders the pcscd setup for this host and, as asked, writes the files (atomically, each
 * with its mode), builds the pcscd image and reloads systemd.
 */
export async function setupPcscd(options: PcscdSetupOptions): Promise<PcscdSetupResult> {
  const build = options.buildDir !== undefined || options.buildOnly === true;
  if (options.mode === "host" && (build || options.systemdDir !== undefined)) {
    throw new PsiError(
      "nitrokeyhsm.pcscd_host_build",
      "buildDir, systemdDir and buildOnly are for the pcscd container; host mode uses the host's pcscd",
      { hint: "drop them, or use container mode" },
    );
  }
  const { loaded } = options;
  const scope = loaded?.scope ?? scopeForUid(options.uid);
  const paths = loaded?.paths ?? defaultPaths(scope, options.env, options.uid);
  const volume = loaded?.config.providers?.nitrokeyhsm?.pcscd_volume ?? "pcscd-socket";
  const buildDir = build ? (options.buildDir ?? PCSCD_BUILD_DIR) : undefined;
  const fromRootfs = buildDir !== undefined && (await exists(join(buildDir, "rootfs.tar")));
  // Loaded on use: the provider pulls in graphene-pk11 and its native addon.
  const provider = await import("@psi/provider-nitrokeyhsm");
  const setup = provider.renderPcscdSetup({
    volume,
    mode: options.mode,
    configDir: buildDir ?? paths.configDir,
    fromRootfs,
    ...(options.image === undefined ? {} : { image: options.image }),
  });
  const image = options.image ?? provider.PCSCD_IMAGE;
  const dirs = {
    quadlet: options.systemdDir ?? paths.systemdDir,
    config: paths.configDir,
    polkit: "/etc/polkit-1/rules.d",
  };
  const files: PlacedPcscdFile[] = setup.files
    .filter((file) => !(options.buildOnly && file.target === "quadlet"))
    .map((file) => {
      // With --build-dir the Containerfile is DIR/Containerfile, as the Python psi wrote it.
      if (buildDir !== undefined && file.target === "config")
        return { ...file, name: "Containerfile", path: join(buildDir, "Containerfile") };
      return { ...file, path: join(options.outputDir ?? dirs[file.target], file.name) };
    });
  const write =
    options.write === true ||
    options.outputDir !== undefined ||
    options.systemdDir !== undefined ||
    build;
  if (write) {
    for (const file of files) {
      await ensureDir(dirname(file.path), 0o755);
      await writeFileAtomic(file.path, file.text, { mode: file.mode });
    }
  }
  if (buildDir !== undefined) await buildPcscdImage(options.env, buildDir, image);
  // The Python psi's flow (--build-dir/--systemd-dir without --build-only) also reloaded
  // systemd after writing the quadlets.
  const daemonReload =
    build && !options.buildOnly && options.outputDir === undefined
      ? await (await import("@psi/setup")).daemonReload({ scope, env: options.env })
      : undefined;
  const commands = setup.commands.filter(
    (command) =>
      !(buildDir !== undefined && command.startsWith("podman build")) &&
      !(daemonReload?.status === "reloaded" && command === "systemctl daemon-reload"),
  );
  return {
    volume,
    mode: options.mode,
    image,
    files,
    written: write,
    ...(buildDir === undefined ? {} : { builtFrom: { dir: buildDir, fromRootfs } }),
    ...(daemonReload === undefined ? {} : { daemonReload }),
    commands,
    notes: setup.notes,
  };
}

/**
 * The JSON of `psi nitrokeyhsm setup-pcscd`: the image only under `built` (when one was
 * built), the daemon-reload only when one was asked for.
 */
export function pcscdSetupJson(result: PcscdSetupResult): Record<string, unknown> {
  const { builtFrom: built, daemonReload: reload } = result;
  return {
    volume: result.volume,
    mode: result.mode,
    written: result.written,
    files: result.files,
    ...(built ? { built: { image: result.image, from_rootfs: built.fromRootfs } } : {}),
    ...(reload ? { daemon_reload: reload } : {}),
    commands: result.commands,
    notes: result.notes,
  };
}
