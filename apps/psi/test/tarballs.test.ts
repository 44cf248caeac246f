import { execFile, spawnSync } from "node:child_process";
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { builtinModules } from "node:module";
import { join, relative } from "node:path";
import { promisify } from "node:util";
import {
  type PackedPackage,
  packWorkspace,
  serveTarballs,
  WORKSPACE_ROOT,
} from "@psi/testkit/pack";
import { requireTool, tempDir } from "@psi/testkit/tmp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// What `pnpm publish` (and so `changeset publish`) uploads: every publishable package
// packed from the built workspace, its file list and the manifest inside the tarball.
const run = promisify(execFile);
const REPOSITORY = "git+https://github.com/quickvm/psi-ts.git";

let work: Awaited<ReturnType<typeof tempDir>>;
let packed: PackedPackage[];
const manifests = new Map<string, Record<string, unknown> & { text: string }>();

beforeAll(async () => {
  work = await tempDir("psi-tarballs-");
  packed = await packWorkspace(join(work.path, "tarballs"));
  for (const pkg of packed) {
    const extracted = join(work.path, "extracted", pkg.name);
    await mkdir(extracted, { recursive: true });
    await run("tar", ["-xzf", pkg.tarball, "-C", extracted]);
    const text = await readFile(join(extracted, "package", "package.json"), "utf8");
    manifests.set(pkg.name, { ...JSON.parse(text), text });
  }
}, 120_000);

afterAll(() => work?.cleanup());

const extractedDir = (name: string) => join(work.path, "extracted", name, "package");

describe("published tarballs", () => {
  it("packs every publishable package (the libraries and the CLI)", () => {
    const names = packed.map((pkg) => pkg.name);
    expect(names).toContain("@psi/cli");
    expect(names).toContain("@psi/envelope");
    expect(names).not.toContain("@psi/testkit");
    expect(names.length).toBe(15);
    expect(names).toContain("@psi/ops");
  });

  it("hold dist, README, LICENSE and package.json, and nothing else (no src, no source maps)", () => {
    for (const pkg of packed) {
      const unexpected = pkg.files.filter(
        (file) =>
          !["LICENSE", "README.md", "package.json"].includes(file) &&
          !/^dist\/[\w.-]+\.(js|cjs|d\.ts)$/.test(file),
      );
      expect({ name: pkg.name, unexpected }).toEqual({ name: pkg.name, unexpected: [] });
      expect(pkg.files).toEqual(expect.arrayContaining(["LICENSE", "README.md", "package.json"]));
      expect(pkg.files.some((file) => /^dist\/(index|cli)\.js$/.test(file))).toBe(true);
    }
  });

  it("ship the MIT LICENSE of the repository", async () => {
    const license = await readFile(join(WORKSPACE_ROOT, "LICENSE"), "utf8");
    expect(license).toContain("Copyright (c) 2026 PSI contributors");
    for (const pkg of packed) {
      expect(await readFile(join(extractedDir(pkg.name), "LICENSE"), "utf8")).toBe(license);
    }
  });

  it("carry manifests with no internal condition, workspace: range or private package", () => {
    for (const pkg of packed) {
      const manifest = manifests.get(pkg.name)!;
      for (const internal of ["@psi/source", "workspace:", "testkit", "devDependencies"]) {
        expect({ name: pkg.name, has: manifest.text.includes(internal) }).toEqual({
          name: pkg.name,
          has: false,
        });
      }
      expect(manifest["license"]).toBe("MIT");
      expect(manifest["files"]).toEqual(["dist"]);
      // npm provenance checks `repository` against the repository that built the package.
      expect(manifest["repository"]).toEqual({
        type: "git",
        url: REPOSITORY,
        directory: relative(WORKSPACE_ROOT, pkg.dir),
      });
      expect(manifest["homepage"]).toMatch(/^https:\/\/github\.com\/quickvm\/psi-ts\/tree\/main\//);
      expect(manifest["bugs"]).toEqual({ url: "https://github.com/quickvm/psi-ts/issues" });
      expect(manifest["publishConfig"]).toMatchObject({ access: "public", provenance: true });
      const deps = Object.entries((manifest["dependencies"] ?? {}) as Record<string, string>);
      for (const [name, range] of deps.filter(([name]) => name.startsWith("@psi/"))) {
        expect(range, `${pkg.name} -> ${name}`).toBe(`^${pkg.version}`);
      }
    }
  });

  it("export the built files under conditions both import and require match", () => {
    for (const pkg of packed.filter((p) => p.name !== "@psi/cli")) {
      const exports = manifests.get(pkg.name)!["exports"] as Record<string, Record<string, string>>;
      for (const [subpath, conditions] of Object.entries(exports)) {
        expect(Object.keys(conditions), `${pkg.name} ${subpath}`).toEqual(["types", "default"]);
        expect(pkg.files).toContain(conditions["default"]!.replace(/^\.\//, ""));
        expect(pkg.files).toContain(conditions["types"]!.replace(/^\.\//, ""));
      }
    }
  });

  it("import Node's builtins with the node: prefix", async () => {
    const bare: string[] = [];
    let prefixed = 0;
    const specifiers = /(?:\bfrom\s*|\bimport\s*\(?\s*|\brequire\s*\(\s*)["']([^"'./][^"']*)["']/g;
    for (const pkg of packed) {
      const dist = join(extractedDir(pkg.name), "dist");
      for (const file of (await readdir(dist)).filter((name) => name.endsWith(".js"))) {
        const code = await readFile(join(dist, file), "utf8");
        for (const [, specifier] of code.matchAll(specifiers)) {
          if (specifier!.startsWith("node:")) prefixed++;
          else if (builtinModules.includes(specifier!))
            bare.push(`${pkg.name}/dist/${file}: ${specifier}`);
        }
      }
    }
    expect(bare).toEqual([]);
    expect(prefixed).toBeGreaterThan(20);
  });
});

// Real consumers of the packed packages, installed by name with plain npm from a local
// registry serving the tarballs (third-party dependencies come from npm's):
// ESM, CommonJS (Node >= 22.12 require()s ESM), TypeScript with nodenext (.mts and a
// .cts that compiles to require) and with bundler resolution.
const npmMissing = requireTool(
  spawnSync("npm", ["--version"]).status === 0,
  "npm (installs the consumers)",
  "npm",
);

describe.skipIf(npmMissing)("consumers of the packed packages", () => {
  const HMAC_B64 = "ykMnTnHyGnwfL7ChPU6fjmlxz2sSuc5bKlQajGL7u9M=";
  const MAPPING = { provider: "infisical", project: "myproject", path: "/myapp", key: "DB_HOST" };
  let consumer: string;
  let expectedKey: string;

  // tsc reports type errors on stdout: a failure carries both streams.
  const node = (args: string[]) =>
    run(process.execPath, args, { cwd: consumer, encoding: "utf8" }).then(
      (r) => r.stdout.trim(),
      (error: { stdout?: string; stderr?: string; message: string }) => {
        throw new Error(`${error.message}\n${error.stdout ?? ""}${error.stderr ?? ""}`);
      },
    );
  const tsc = (project: string) =>
    node([join(WORKSPACE_ROOT, "node_modules", "typescript", "bin", "tsc"), "-p", project]);

  beforeAll(async () => {
    const vectors = JSON.parse(
      await readFile(join(WORKSPACE_ROOT, "vectors", "manifest.json"), "utf8"),
    );
    expect(vectors.hmac_key_b64).toBe(HMAC_B64);
    expect(vectors.entries[0].mapping).toEqual(MAPPING);
    expectedKey = vectors.entries[0].cache_key;

    consumer = join(work.path, "consumer");
    await mkdir(join(consumer, "nodenext"), { recursive: true });
    await mkdir(join(consumer, "bundler"), { recursive: true });
    const typesNode = JSON.parse(
      await readFile(
        join(WORKSPACE_ROOT, "node_modules", "@types", "node", "package.json"),
        "utf8",
      ),
    ).version;
    const direct = ["@psi/envelope", "@psi/core", "@psi/unitgen"];
    const version = (name: string) => packed.find((pkg) => pkg.name === name)!.version;
    await writeFile(
      join(consumer, "package.json"),
      JSON.stringify({
        name: "psi-consumer",
        private: true,
        dependencies: {
          ...Object.fromEntries(direct.map((name) => [name, `^${version(name)}`])),
          "@types/node": typesNode,
        },
      }),
    );
    const call = `cacheKey(Buffer.from(${JSON.stringify(HMAC_B64)}, "base64"), ${JSON.stringify(MAPPING)})`;
    await writeFile(
      join(consumer, "esm.mjs"),
      `import { cacheKey } from "@psi/envelope";\nimport { renderDriverConf } from "@psi/unitgen";\n` +
        `console.log(${call}, typeof renderDriverConf);\n`,
    );
    await writeFile(
      join(consumer, "cjs.cjs"),
      `const { cacheKey } = require("@psi/envelope");\nconst { PsiError } = require("@psi/core");\n` +
        `console.log(${call}, new PsiError("x.y", "m") instanceof Error);\n`,
    );
    // nodenext also checks the published declarations (skipLibCheck off); bundler need not again.
    const strict = { strict: true, target: "es2023", types: ["node"] };
    await writeFile(
      join(consumer, "nodenext", "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          ...strict,
          module: "nodenext",
          moduleResolution: "nodenext",
          outDir: "out",
        },
        include: ["*.mts", "*.cts"],
      }),
    );
    await writeFile(
      join(consumer, "nodenext", "main.mts"),
      `import { cacheKey } from "@psi/envelope";\nimport { PsiError } from "@psi/core/errors";\n` +
        `const key: string = ${call};\nconsole.log(key, new PsiError("x.y", "m").code);\n`,
    );
    await writeFile(
      join(consumer, "nodenext", "main.cts"),
      `import { cacheKey } from "@psi/envelope";\nimport { isPsiError } from "@psi/core";\n` +
        `const key: string = ${call};\nconsole.log(key, typeof require, isPsiError(new Error()));\n`,
    );
    await writeFile(join(consumer, "bundler", "package.json"), JSON.stringify({ type: "module" }));
    await writeFile(
      join(consumer, "bundler", "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          ...strict,
          module: "preserve",
          moduleResolution: "bundler",
          noEmit: true,
        },
        include: ["*.ts"],
      }),
    );
    await writeFile(
      join(consumer, "bundler", "main.ts"),
      `import { cacheKey } from "@psi/envelope";\nimport { renderDriverConf } from "@psi/unitgen";\n` +
        `const key: string = ${call};\nconsole.log(key, typeof renderDriverConf);\n`,
    );
    const registry = await serveTarballs(packed);
    try {
      await run("npm", ["install", "--loglevel=error", ...registry.npmArgs], {
        cwd: consumer,
        encoding: "utf8",
      });
    } finally {
      await registry.close();
    }
  }, 240_000);

  it("an ES module imports them", async () => {
    expect(await node(["esm.mjs"])).toBe(`${expectedKey} function`);
  });

  it("a CommonJS module require()s them", async () => {
    expect(await node(["cjs.cjs"])).toBe(`${expectedKey} true`);
  });

  it("TypeScript with moduleResolution nodenext type-checks an .mts and a .cts, and both run", async () => {
    await tsc("nodenext");
    expect(await readFile(join(consumer, "nodenext", "out", "main.cjs"), "utf8")).toContain(
      'require("@psi/envelope")',
    );
    expect(await node(["nodenext/out/main.mjs"])).toBe(`${expectedKey} x.y`);
    expect(await node(["nodenext/out/main.cjs"])).toBe(`${expectedKey} function false`);
  }, 120_000);

  it("TypeScript with moduleResolution bundler type-checks, and the file runs", async () => {
    await tsc("bundler");
    expect(await node(["bundler/main.ts"])).toBe(`${expectedKey} function`);
  }, 120_000);
});
