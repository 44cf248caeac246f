// The publish step for the install tests: the workspace's packages as `pnpm pack` makes
// them (what `changeset publish` uploads), served to the real npm and pnpm clients as the
// `@psi` scope's registry on 127.0.0.1. Every other package comes from the real registry.
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { basename, join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** A running scope registry. */
export interface LocalRegistry {
  /** `http://127.0.0.1:<port>/`, for `--@psi:registry=`. */
  url: string;
  /** Package names served. */
  names: string[];
  stop(): Promise<void>;
}

/** `pnpm pack` of every public workspace package under `root` into `dir`; the tarballs' paths. */
export async function packWorkspace(root: string, dir: string): Promise<string[]> {
  const tarballs: string[] = [];
  for (const parent of ["packages", "apps"]) {
    for (const name of (await readdir(join(root, parent))).sort()) {
      const pkgDir = join(root, parent, name);
      const manifest = JSON.parse(await readFile(join(pkgDir, "package.json"), "utf8")) as {
        private?: boolean;
      };
      if (manifest.private) continue;
      const { stdout } = await run("pnpm", ["pack", "--pack-destination", dir], { cwd: pkgDir });
      const file = stdout.trim().split("\n").at(-1)!.trim();
      tarballs.push(file.startsWith("/") ? file : join(dir, basename(file)));
    }
  }
  return tarballs;
}

/** Serves each tarball's package as the only version of its name (npm's packument shape). */
export async function startLocalRegistry(tarballs: string[]): Promise<LocalRegistry> {
  const packuments = new Map<string, unknown>();
  const files = new Map<string, Buffer>();
  const server = createServer((req, res) => {
    const path = decodeURIComponent((req.url ?? "/").split("?")[0]!).replace(/^\/+/, "");
    const file = files.get(path);
    if (file) {
      res.writeHead(200, { "content-type": "application/octet-stream" });
      res.end(file);
      return;
    }
    const doc = packuments.get(path);
    if (doc) {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify(doc));
      return;
    }
    res.writeHead(404, { "content-type": "application/json" });
    res.end('{"error":"Not found"}');
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  for (const tarball of tarballs) {
    const bytes = await readFile(tarball);
    const { stdout } = await run("tar", ["-xzOf", tarball, "package/package.json"]);
    const manifest = JSON.parse(stdout) as { name: string; version: string };
    const fileName = `-/${basename(tarball)}`;
    files.set(fileName, bytes);
    packuments.set(manifest.name, {
      name: manifest.name,
      "dist-tags": { latest: manifest.version },
      versions: {
        [manifest.version]: {
          ...manifest,
          dist: {
            tarball: `${url}${fileName}`,
            shasum: createHash("sha1").update(bytes).digest("hex"),
            integrity: `sha512-${createHash("sha512").update(bytes).digest("base64")}`,
          },
        },
      },
    });
  }
  return {
    url,
    names: [...packuments.keys()],
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
