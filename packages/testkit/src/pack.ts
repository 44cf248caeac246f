/**
 * The workspace's publishable packages as the registry would get them: `pnpm pack` (what
 * `pnpm publish` and `changeset publish` upload) on the built packages, and the npm
 * `overrides` that make plain npm install a set of tarballs with no registry for `@psi/*`.
 */
import { execFile } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** The repository root (this file is packages/testkit/src/pack.ts). */
export const WORKSPACE_ROOT = resolve(import.meta.dirname, "../../..");

/** A workspace package that is published (not `private`). */
export interface WorkspacePackage {
  name: string;
  version: string;
  /** Absolute directory of the package in the checkout. */
  dir: string;
}

/** A packed workspace package. */
export interface PackedPackage extends WorkspacePackage {
  /** Absolute path of its `.tgz`. */
  tarball: string;
  /** Paths inside the tarball, relative to its `package/` folder, sorted. */
  files: string[];
}

/** Every publishable package under packages/ and apps/, sorted by name. */
export function publishablePackages(): WorkspacePackage[] {
  const found: WorkspacePackage[] = [];
  for (const group of ["packages", "apps"]) {
    for (const entry of readdirSync(join(WORKSPACE_ROOT, group), { withFileTypes: true })) {
      if (!entry.isDirectory()) continue;
      const dir = join(WORKSPACE_ROOT, group, entry.name);
      let manifest: { name: string; version: string; private?: boolean };
      try {
        manifest = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
      } catch {
        continue;
      }
      if (!manifest.private) found.push({ name: manifest.name, version: manifest.version, dir });
    }
  }
  return found.sort((a, b) => a.name.localeCompare(b.name));
}

// `pnpm` as the running pnpm knows it (`pnpm exec vitest` sets npm_execpath), else PATH.
function pnpmCommand(): [string, string[]] {
  const execPath = process.env["npm_execpath"];
  if (execPath?.includes("pnpm")) return [process.execPath, [execPath]];
  return ["pnpm", []];
}

/**
 * Packs the built publishable packages (all, or the named ones) into `dest` with one
 * `pnpm pack -r`, so the tarballs get exactly what publishing applies: `files`,
 * `publishConfig` and the `.pnpmfile.cjs` `beforePacking` hook. Build first.
 */
export async function packWorkspace(
  dest: string,
  options: { only?: readonly string[]; signal?: AbortSignal } = {},
): Promise<PackedPackage[]> {
  const wanted = publishablePackages().filter(
    (pkg) => options.only === undefined || options.only.includes(pkg.name),
  );
  const unknown = (options.only ?? []).filter((name) => !wanted.some((pkg) => pkg.name === name));
  if (unknown.length > 0)
    throw new Error(`not publishable workspace packages: ${unknown.join(", ")}`);
  const [command, prefix] = pnpmCommand();
  const filters = wanted.flatMap((pkg) => ["--filter", pkg.name]);
  const { stdout } = await run(
    command,
    [...prefix, "-r", ...filters, "pack", "--pack-destination", dest, "--json"],
    { cwd: WORKSPACE_ROOT, signal: options.signal, maxBuffer: 64 * 1024 * 1024 },
  );
  const reports = [JSON.parse(stdout)].flat() as {
    name: string;
    filename: string;
    files: { path: string }[];
  }[];
  return wanted.map((pkg) => {
    const report = reports.find((r) => r.name === pkg.name);
    if (!report) throw new Error(`pnpm pack did not report ${pkg.name}`);
    return { ...pkg, tarball: report.filename, files: report.files.map((f) => f.path).sort() };
  });
}

/**
 * npm `overrides` (and dependency specs) pointing every packed package at its tarball:
 * with them, `npm install` takes `@psi/*`, direct or transitive, from the tarballs and
 * only third-party dependencies from the registry.
 */
export function tarballOverrides(packed: readonly PackedPackage[]): Record<string, string> {
  return Object.fromEntries(packed.map((pkg) => [pkg.name, `file:${pkg.tarball}`]));
}
