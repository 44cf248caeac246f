// The application bundles' loader (src/bundle-loader.ts) with V8's code cache: each case
// runs the loader in a fresh Node process (V8 reads a code cache only when compiling), on
// a small stamped bundle or on the built dist/app.cjs and dist/hot.cjs, with its cache in
// a temp directory.
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  chmod,
  lstat,
  readdir,
  readFile,
  stat,
  symlink,
  utimes,
  writeFile,
} from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { tempDir } from "@psi/testkit/tmp";
import { afterEach, describe, expect, it } from "vitest";

const LOADER = fileURLToPath(new URL("../src/bundle-loader.ts", import.meta.url));
const APP = fileURLToPath(new URL("../dist/app.cjs", import.meta.url));
const HOT = fileURLToPath(new URL("../dist/hot.cjs", import.meta.url));
const uid = process.getuid?.() ?? 0;

let scratch: { path: string; cleanup: () => Promise<void> } | undefined;
afterEach(async () => {
  await scratch?.cleanup();
  scratch = undefined;
});

interface Loaded {
  codeCache: string;
  cacheFile: string | null;
  result: unknown;
}

/** Loads `bundle` in a fresh Node and evaluates `use` (an expression over `exports`). */
function load(bundle: string, cacheDir: string | undefined, use: string, flags: string[] = []) {
  const script = `
    const { loadBundle } = await import(${JSON.stringify(LOADER)});
    const loaded = loadBundle(${JSON.stringify(bundle)}, {
      cacheDir: ${JSON.stringify(cacheDir)}, kind: "test", uid: ${uid},
    });
    const exports = loaded.exports;
    const result = await (${use});
    console.log(JSON.stringify({ codeCache: loaded.codeCache, cacheFile: loaded.cacheFile ?? null, result }));
  `;
  const out = execFileSync(process.execPath, [...flags, "--input-type=module", "-e", script], {
    encoding: "utf8",
    env: { PATH: process.env["PATH"] ?? "" },
  });
  return JSON.parse(out) as Loaded;
}

/** A bundle as the build writes one: the wrapper, stamped with its text's SHA-256. */
async function stampedBundle(dir: string, body: string): Promise<string> {
  const text = `(function (exports, require, module, __filename, __dirname, __psiBundleUrl) {\n${body}\n})`;
  const file = join(dir, "app.cjs");
  const digest = createHash("sha256").update(text).digest("hex");
  await writeFile(file, `// psi-app-bundle sha256=${digest}\n${text}`);
  return file;
}

const BODY = `
exports.twice = (n) => n * 2;
exports.where = { file: __filename, url: __psiBundleUrl };
exports.fs = typeof require("node:fs").readFileSync;`;

describe("the application bundle's code cache", () => {
  it("is written 0600 at the first run's exit and used by the next run", async () => {
    scratch = await tempDir("psi-bundle-loader-");
    const bundle = await stampedBundle(scratch.path, BODY);
    const cacheDir = join(scratch.path, "cache");
    await import("node:fs/promises").then((fs) => fs.mkdir(cacheDir, { mode: 0o700 }));
    const use = "[exports.twice(21), exports.where, exports.fs]";

    const first = load(bundle, cacheDir, use);
    expect(first.codeCache).toBe("created");
    expect(first.result).toEqual([42, { file: bundle, url: `file://${bundle}` }, "function"]);
    expect(first.cacheFile).toMatch(
      new RegExp(
        `^${cacheDir}/psi-app-[0-9a-f]{24}-test-${process.version}-${process.arch}\\.v8cache$`,
      ),
    );
    const written = await stat(first.cacheFile!);
    expect(written.mode & 0o777).toBe(0o600);
    expect(written.size).toBeGreaterThan(0);

    const second = load(bundle, cacheDir, use);
    expect(second.codeCache).toBe("accepted");
    expect(second.result).toEqual(first.result);
    // nothing left behind: the cache file only, no temp files
    expect(await readdir(cacheDir)).toEqual([first.cacheFile!.slice(cacheDir.length + 1)]);
  });

  it("a day-old cache is measured again: replaced when a run compiled more, else only touched", async () => {
    scratch = await tempDir("psi-bundle-loader-");
    const body = `${BODY}
exports.more = (words) => words.map((w) => w.toUpperCase()).filter((w) => w.length > 1).join("-");`;
    const bundle = await stampedBundle(scratch.path, body);
    // the first run never calls exports.more, so its cache holds no code for it
    const first = load(bundle, scratch.path, "exports.twice(1)");
    const cacheFile = first.cacheFile!;
    const small = await readFile(cacheFile);
    const dayAgo = new Date(Date.now() - 25 * 60 * 60 * 1000);
    const age = async () => Date.now() - (await stat(cacheFile)).mtimeMs;

    await utimes(cacheFile, dayAgo, dayAgo);
    const wider = load(bundle, scratch.path, 'exports.more(["a", "bc", "de"])');
    expect(wider).toMatchObject({ codeCache: "rechecked", result: "BC-DE" });
    const larger = await readFile(cacheFile);
    expect(larger.length).toBeGreaterThan(small.length);
    expect(await age()).toBeLessThan(60_000);
    expect(load(bundle, scratch.path, "exports.twice(2)").codeCache).toBe("accepted");

    // a day later, a run that compiled nothing new leaves the bytes and resets the clock
    await utimes(cacheFile, dayAgo, dayAgo);
    expect(load(bundle, scratch.path, "exports.twice(3)")).toMatchObject({
      codeCache: "rechecked",
      result: 6,
    });
    expect((await readFile(cacheFile)).equals(larger)).toBe(true);
    expect(await age()).toBeLessThan(60_000);
  });

  it("a damaged cache is refused by V8: the bundle still runs and the cache is rewritten", async () => {
    scratch = await tempDir("psi-bundle-loader-");
    const bundle = await stampedBundle(scratch.path, BODY);
    const first = load(bundle, scratch.path, "exports.twice(1)");
    const good = await readFile(first.cacheFile!);
    // same length, every byte changed
    await writeFile(first.cacheFile!, Buffer.from(good.map((byte) => byte ^ 0xff)));

    const damaged = load(bundle, scratch.path, "exports.twice(4)");
    expect(damaged.codeCache).toBe("rejected");
    expect(damaged.result).toBe(8);
    expect(load(bundle, scratch.path, "exports.twice(5)")).toMatchObject({
      codeCache: "accepted",
      result: 10,
    });
  });

  it("a cache others could have written, or a symlink, is never read", async () => {
    scratch = await tempDir("psi-bundle-loader-");
    const bundle = await stampedBundle(scratch.path, BODY);
    const { cacheFile } = load(bundle, scratch.path, "0");
    await chmod(cacheFile!, 0o620);
    expect(load(bundle, scratch.path, "0").codeCache).toBe("created");
    // replaced by a 0600 file of its own
    expect((await stat(cacheFile!)).mode & 0o777).toBe(0o600);

    const elsewhere = join(scratch.path, "elsewhere");
    await writeFile(elsewhere, "not a code cache");
    await import("node:fs/promises").then((fs) => fs.rm(cacheFile!));
    await symlink(elsewhere, cacheFile!);
    expect(load(bundle, scratch.path, "0").codeCache).toBe("created");
    // the link itself was replaced; what it pointed to is untouched
    expect((await lstat(cacheFile!)).isFile()).toBe(true);
    expect(await readFile(elsewhere, "utf8")).toBe("not a code cache");
  });

  it("another build gets a cache file of its own; an old build's goes after a day", async () => {
    scratch = await tempDir("psi-bundle-loader-");
    const one = load(await stampedBundle(scratch.path, BODY), scratch.path, "exports.twice(2)");
    const other = load(
      await stampedBundle(scratch.path, `${BODY}\nexports.twice = (n) => n * 3;`),
      scratch.path,
      "exports.twice(2)",
    );
    expect(other).toMatchObject({ codeCache: "created", result: 6 });
    expect(other.cacheFile).not.toBe(one.cacheFile);
    // written within the day: both builds keep their cache
    const names = async () => (await readdir(scratch!.path)).sort();
    expect(await names()).toEqual(
      ["app.cjs", one.cacheFile!, other.cacheFile!].map((p) => p.replace(/.*\//, "")).sort(),
    );
    // two days old: the next build's write removes it, and only caches of this kind
    const twoDaysAgo = new Date(Date.now() - 2 * 24 * 3600 * 1000);
    const serveCache = join(
      scratch.path,
      "psi-app-0123456789abcdef01234567-serve-v1.0.0-x64.v8cache",
    );
    await writeFile(serveCache, "");
    await writeFile(join(scratch.path, "notes"), "");
    for (const old of [one.cacheFile!, serveCache, join(scratch.path, "notes")])
      await utimes(old, twoDaysAgo, twoDaysAgo);
    const third = load(
      await stampedBundle(scratch.path, `${BODY}\nexports.twice = (n) => n * 4;`),
      scratch.path,
      "exports.twice(2)",
    );
    expect(third.result).toBe(8);
    expect(await names()).toEqual(
      ["app.cjs", other.cacheFile!, third.cacheFile!, serveCache, "notes"]
        .map((p) => p.replace(/.*\//, ""))
        .sort(),
    );
  });

  it("is off without a cache directory or without the build's stamp", async () => {
    scratch = await tempDir("psi-bundle-loader-");
    const bundle = await stampedBundle(scratch.path, BODY);
    expect(load(bundle, undefined, "exports.twice(3)")).toMatchObject({
      codeCache: "off",
      result: 6,
    });
    const unstamped = join(scratch.path, "unstamped.cjs");
    await writeFile(unstamped, (await readFile(bundle, "latin1")).replace(/^.*\n/, ""));
    expect(load(unstamped, scratch.path, "exports.twice(3)")).toMatchObject({
      codeCache: "off",
      cacheFile: null,
      result: 6,
    });
    expect(await readdir(scratch.path)).toEqual(["app.cjs", "unstamped.cjs"]);
  });
});

describe("dist/app.cjs and dist/hot.cjs", () => {
  it.each([APP, HOT])(
    "%s is ASCII and stamped with the SHA-256 of the rest of its text",
    async (file) => {
      const text = await readFile(file, "latin1");
      const [stampLine, ...rest] = text.split("\n");
      expect(text).toMatch(/^[\x00-\x7f]*$/);
      expect(stampLine).toBe(
        `// psi-app-bundle sha256=${createHash("sha256").update(rest.join("\n"), "latin1").digest("hex")}`,
      );
    },
  );

  it("hot.cjs holds serve and cache status without commander, the other commands or the help", async () => {
    // esbuild names every module it bundles in a comment line
    const modules = (await readFile(HOT, "latin1")).match(/^\/\/ \S+\.[cm]?[jt]s$/gm) ?? [];
    expect(modules).toContain("// src/commands/serve.ts");
    expect(modules).toContain("// src/commands/cache-status.ts");
    expect(
      modules.filter((line) =>
        /commander|reference\.ts|commands\/index\.ts|main\.ts|setup/.test(line),
      ),
    ).toEqual([]);
    expect((await stat(HOT)).size).toBeLessThan((await stat(APP)).size * 0.75);
  });

  it("hot.cjs runs only the plain command lines and leaves the rest to the whole CLI", async () => {
    scratch = await tempDir("psi-bundle-loader-");
    const config = join(scratch.path, "config.yaml");
    await writeFile(
      config,
      `state_dir: ${join(scratch.path, "state")}\ncache: { enabled: false }\n`,
    );
    const use = (argv: string[], env: Record<string, string> = {}) => `(async () => {
      let out = "";
      const io = { stdout: { write: (t) => { out += t; } }, stderr: { write: (t) => { out += t; } }, stdin: process.stdin };
      const env = { PSI_CONFIG: ${JSON.stringify(config)}, ...${JSON.stringify(env)} };
      const code = await exports.runPlain(${JSON.stringify(argv)}, { io, env, uid: ${uid} });
      return [code ?? null, out];
    })()`;
    const status = load(HOT, undefined, use(["--json", "cache", "status"])).result;
    expect(status).toEqual([0, expect.stringContaining(`"config": ${JSON.stringify(config)}`)]);
    // an error on the plain path reads as the CLI's: exit 2 for a usage error, with its hint
    expect(
      load(HOT, undefined, use(["cache", "status"], { PSI_LOG_LEVEL: "loud" })).result,
    ).toEqual([
      2,
      "psi: PSI_LOG_LEVEL=loud is not a log level (debug, info, warn/warning or error)\n(run with --help for usage)\n",
    ]);
    // help, an unknown option, a bad --log-level, another command: not run, nothing written
    for (const argv of [
      ["cache", "status", "--help"],
      ["serve", "--bogus"],
      ["cache", "status", "--log-level=loud"],
      ["status"],
    ]) {
      expect(load(HOT, undefined, use(argv)).result).toEqual([null, ""]);
    }
  });

  it.each([
    ["app.cjs", APP, ["--json", "status"]],
    ["hot.cjs", HOT, ["--json", "cache", "status"]],
  ])(
    "%s keeps no value from the run in its code cache: configuration secrets stay out",
    async (_name, bundle, argv) => {
      scratch = await tempDir("psi-bundle-loader-");
      const secret = `s3cret-${Math.random().toString(36).slice(2)}-never-cached`;
      const config = join(scratch.path, "config.yaml");
      await writeFile(
        config,
        `state_dir: ${join(scratch.path, "state")}\nsocket_token: ${secret}\n` +
          `providers:\n  infisical:\n    auth: { method: universal-auth, client_id: id, client_secret: ${secret} }\n` +
          `    projects: { p: { id: x, environment: prod } }\n` +
          `cache: { enabled: true, backend: keyfile, key_file: ${join(scratch.path, "key")} }\n`,
        { mode: 0o600 },
      );
      const cacheDir = join(scratch.path, "cache");
      await import("node:fs/promises").then((fs) => fs.mkdir(cacheDir, { mode: 0o700 }));
      const use = `(async () => {
      let out = "";
      const io = { stdout: { write: (t) => { out += t; } }, stderr: { write: (t) => { out += t; } }, stdin: process.stdin };
      const code = await (exports.runCli ?? exports.runPlain)(${JSON.stringify(argv)}, { io, env: { PSI_CONFIG: ${JSON.stringify(config)} }, uid: ${uid} });
      return [code, out.includes(${JSON.stringify(config)})];
    })()`;
      const run = load(bundle, cacheDir, use);
      expect(run.codeCache).toBe("created");
      expect((run.result as [number, boolean])[1]).toBe(true);
      const bytes = await readFile(run.cacheFile!);
      expect(bytes.length).toBeGreaterThan(100_000);
      // the bundle's own string constants are there, so a value would show the same way
      expect(bytes.includes(Buffer.from("universal-auth", "latin1"))).toBe(true);
      expect(bytes.includes(Buffer.from(secret, "latin1"))).toBe(false);
      expect(bytes.includes(Buffer.from(secret, "utf16le"))).toBe(false);
    },
  );

  it("missing or damaged, it makes psi say so and how to fix it, and exit 1", async () => {
    scratch = await tempDir("psi-bundle-loader-");
    const cli = join(scratch.path, "cli.js");
    await writeFile(cli, await readFile(fileURLToPath(new URL("../dist/cli.js", import.meta.url))));
    const run = (...argv: string[]) =>
      spawnSync(process.execPath, [cli, ...argv], {
        encoding: "utf8",
        env: { PATH: process.env["PATH"] ?? "", HOME: scratch!.path },
      });
    // `cache status` loads hot.cjs; `status`, and `cache status --help` after it, app.cjs
    for (const [name, argv] of [
      ["hot.cjs", ["cache", "status"]],
      ["app.cjs", ["status"]],
      ["app.cjs", ["cache", "status", "--help"]],
    ] as const) {
      const missing = run(...argv);
      expect(missing.status).toBe(1);
      expect(missing.stderr).toContain(`psi: cannot load ${join(scratch.path, name)}`);
      expect(missing.stderr).toContain("hint: reinstall psi");
      if (name === "hot.cjs") await writeFile(join(scratch.path, name), await readFile(HOT));
    }
    await writeFile(join(scratch.path, "app.cjs"), "(function () { this is not JavaScript");
    const damaged = run("status");
    expect(damaged.status).toBe(1);
    expect(damaged.stderr).toMatch(/psi: cannot load .*app\.cjs: .*\nhint: reinstall psi/);
    expect(damaged.stderr).not.toMatch(/^\s+at /m);
    await writeFile(join(scratch.path, "app.cjs"), await readFile(APP));
    const help = run("cache", "status", "--help");
    expect({ status: help.status, stdout: help.stdout }).toMatchObject({
      status: 0,
      stdout: expect.stringContaining("Usage: psi cache status"),
    });
  });

  it("runs the CLI from its code cache on the second run", async () => {
    scratch = await tempDir("psi-bundle-loader-");
    const use = `(async () => {
      let out = "";
      const io = { stdout: { write: (t) => { out += t; } }, stderr: { write: (t) => { out += t; } }, stdin: process.stdin };
      const code = await exports.runCli(["completion", "bash"], { io, env: {}, uid: ${uid} });
      return [code, out.includes("complete -F")];
    })()`;
    expect(load(APP, scratch.path, use)).toMatchObject({ codeCache: "created", result: [0, true] });
    expect(load(APP, scratch.path, use)).toMatchObject({
      codeCache: "accepted",
      result: [0, true],
    });
  });
});
