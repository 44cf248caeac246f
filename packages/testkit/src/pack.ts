/**
 * The workspace's publishable packages as the registry would get them: `pnpm pack` (what
 * `pnpm publish` and `changeset publish` upload) on the built packages, and a local
 * registry serving them so that plain npm installs them as a user would.
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream, readdirSync, readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { basename, join, resolve } from "node:path";
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

/** A registry for the packed packages, listening on 127.0.0.1. */
export interface TarballRegistry {
  /** Base URL, e.g. `http://127.0.0.1:41234/`. */
  url: string;
  /** npm arguments that take the `@psi` scope from this registry and the rest from npm's. */
  npmArgs: string[];
  close: () => Promise<void>;
}

/**
 * Serves packed packages the way the npm registry does (a packument per name, tarballs
 * with integrity), for the `@psi` scope only: plain `npm install` or `npm install -g`
 * with {@link TarballRegistry.npmArgs} then installs them by name and semver range, and
 * their third-party dependencies from the real registry. It answers from this process's
 * event loop: run npm with async `execFile`, never `execFileSync`.
 */
export async function serveTarballs(packed: readonly PackedPackage[]): Promise<TarballRegistry> {
  const documents = new Map<string, string>();
  const tarballs = new Map<string, string>();
  const server = createServer((request, response) => {
    const path = decodeURIComponent(new URL(request.url ?? "/", "http://x").pathname).slice(1);
    const tarball = tarballs.get(path);
    if (tarball) {
      response.writeHead(200, { "content-type": "application/octet-stream" });
      createReadStream(tarball).pipe(response);
      return;
    }
    const document = documents.get(path);
    response.writeHead(document ? 200 : 404, { "content-type": "application/json" });
    response.end(document ?? JSON.stringify({ error: "not found" }));
  });
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  const { port } = server.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}/`;
  for (const pkg of packed) {
    const bytes = await readFile(pkg.tarball);
    const { stdout } = await run("tar", ["-xOzf", pkg.tarball, "package/package.json"]);
    const file = `${pkg.name}/-/${basename(pkg.tarball)}`;
    tarballs.set(file, pkg.tarball);
    const dist = {
      tarball: `${url}${file}`,
      shasum: createHash("sha1").update(bytes).digest("hex"),
      integrity: `sha512-${createHash("sha512").update(bytes).digest("base64")}`,
    };
    const manifest = { ...JSON.parse(stdout), _id: `${pkg.name}@${pkg.version}`, dist };
    documents.set(
      pkg.name,
      JSON.stringify({
        name: pkg.name,
        "dist-tags": { latest: pkg.version },
        versions: { [pkg.version]: manifest },
      }),
    );
  }
  return {
    url,
    npmArgs: [`--@psi:registry=${url}`, "--no-audit", "--no-fund"],
    close: () =>
      new Promise((done) => {
        server.close(() => done());
        server.closeAllConnections();
      }),
  };
}
