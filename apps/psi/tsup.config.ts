import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { defineConfig, type Options } from "tsup";

const { version } = JSON.parse(readFileSync("package.json", "utf8")) as { version: string };

// One bundle for the CLI: the workspace packages and the pure-JS dependencies are
// compiled in (an ESM graph of ~120 files costs more to load than the code itself), split
// at every dynamic import so a command loads only its own part. Native addons stay
// external, loaded on demand by the commands that need them.
const requireBuiltin = createRequire(import.meta.url);
type Plugin = NonNullable<Options["esbuildPlugins"]>[number];

/**
 * Imports of Node built-ins without Node's ESM facade. `import { x } from "node:fs"`
 * makes Node build a namespace of every export, and reading them runs the lazy getters:
 * node:fs then loads its streams, node:crypto its Web Crypto, node:http undici — about
 * 15 ms of a `psi serve` start that a bare server never pays. Each built-in becomes a
 * module that takes the object from process.getBuiltinModule and re-exports its values;
 * the expensive getters below are left out, so importing one by name fails this build.
 */
const LAZY: Record<string, readonly string[]> = {
  // `promises` loads node:fs/promises, and with it readline and the REPL's history (~1 ms);
  // `Dir` and `opendir` load the directory reader (~0.15 ms), which nothing here uses
  "node:fs": [
    "Dir",
    "opendir",
    "opendirSync",
    "ReadStream",
    "WriteStream",
    "FileReadStream",
    "FileWriteStream",
    "Utf8Stream",
    "promises",
  ],
  "node:crypto": ["webcrypto", "subtle", "getRandomValues"],
  "node:http": ["WebSocket", "CloseEvent", "MessageEvent"],
  "node:net": ["BlockList", "SocketAddress"],
  "node:process": ["stdout", "stdin", "stderr", "report"],
  // plain values cannot wait for first use (below); nothing here reads them
  "node:os": ["EOL", "devNull"],
};
/**
 * Built-ins loaded on first use rather than when a module that names them initialises:
 * node:crypto initialises OpenSSL and ~50 internal modules (~5 ms of CPU), which `psi
 * cache status` never needs and `psi serve` needs only once it listens; node:fs/promises
 * brings readline and the REPL's history with it (~1 ms), for the commands whose first
 * file operation comes late or never; node:os (~0.2 ms) only answers `homedir()` when
 * HOME is unset. Functions become wrappers, classes proxies (`new`
 * and `instanceof` reach the real class), and objects (`constants`) proxies that read
 * through.
 */
const ON_FIRST_USE = new Set(["node:crypto", "node:fs/promises", "node:os"]);

function onFirstUse(specifier: string, mod: Record<string, unknown>, names: string[]): string {
  const lines = [
    "let real;",
    `const load = () => (real ??= process.getBuiltinModule(${specifier}));`,
    "const through = (get) => ({ get: (_, key) => Reflect.get(get(), key), has: (_, key) => Reflect.has(get(), key), ownKeys: () => Reflect.ownKeys(get()), getOwnPropertyDescriptor: (_, key) => ({ ...Reflect.getOwnPropertyDescriptor(get(), key), configurable: true }) });",
    "export default new Proxy({}, through(load));",
  ];
  for (const name of names) {
    const value = mod[name];
    if (typeof value === "function" && /^[A-Z]/.test(name)) {
      lines.push(
        `export const ${name} = new Proxy(function ${name}() {}, { ...through(() => load().${name}), apply: (_, self, a) => Reflect.apply(load().${name}, self, a), construct: (_, a, target) => Reflect.construct(load().${name}, a) });`,
      );
    } else if (typeof value === "function") {
      lines.push(`export function ${name}(...a) { return load().${name}(...a); }`);
    } else if (typeof value === "object" && value !== null) {
      lines.push(`export const ${name} = new Proxy({}, through(() => load().${name}));`);
    } else {
      throw new Error(`${specifier}: cannot load ${name} (${typeof value}) on first use`);
    }
  }
  return lines.join("\n");
}

const builtinsWithoutFacade: Plugin = {
  name: "psi-builtins-without-facade",
  setup(build) {
    build.onResolve({ filter: /^node:/ }, (args) =>
      args.kind === "import-statement" || args.kind === "dynamic-import"
        ? { path: args.path, namespace: "psi-builtin" }
        : undefined,
    );
    build.onLoad({ filter: /.*/, namespace: "psi-builtin" }, (args) => {
      const mod = requireBuiltin(args.path) as Record<string, unknown>;
      const names = Object.keys(mod).filter((name) => {
        return (
          name !== "default" &&
          /^[A-Za-z_$][\w$]*$/.test(name) &&
          !(LAZY[args.path] ?? []).includes(name)
        );
      });
      const specifier = JSON.stringify(args.path);
      if (ON_FIRST_USE.has(args.path))
        return { contents: onFirstUse(specifier, mod, names), loader: "js" };
      return {
        contents: [
          `const m = process.getBuiltinModule(${specifier});`,
          "export default m;",
          `export const { ${names.join(", ")} } = m;`,
        ].join("\n"),
        loader: "js",
      };
    });
  },
};

/**
 * `yaml` from its ES module build. Its `node` export is CommonJS, which esbuild can only
 * wrap whole (every module of it evaluated through a require shim, nothing shaken out);
 * the ES build is the same code, which esbuild hoists into the chunk and trims.
 */
const yamlAsModule: Plugin = {
  name: "psi-yaml-esm",
  setup(build) {
    build.onResolve({ filter: /^yaml$/ }, () => ({
      path: requireBuiltin.resolve("yaml").replace(/dist[/\\]index\.js$/, "browser/index.js"),
    }));
  },
};

/**
 * The text with every non-ASCII character written as a JavaScript escape. esbuild's ASCII
 * charset escapes strings and identifiers but leaves regular expression literals and
 * comments as they are; `\xB5` or `\u2013` (an astral character as its surrogate pair,
 * which `u` expressions read as one code point) mean the same there. A character that was
 * itself escaped (`\µ`) loses that backslash, since the new escape stands for it.
 */
function asciiOnly(text: string): string {
  const hex = (code: number, width: number) => code.toString(16).toUpperCase().padStart(width, "0");
  return text.replace(/(\\*)([^\x00-\x7f])/gu, (_, slashes: string, char: string) => {
    const units = Array.from({ length: char.length }, (_, i) => char.charCodeAt(i));
    const escaped = units
      .map((unit) => (unit <= 0xff ? `\\x${hex(unit, 2)}` : `\\u${hex(unit, 4)}`))
      .join("");
    return (slashes.length % 2 === 1 ? slashes.slice(1) : slashes) + escaped;
  });
}

/**
 * Makes the application bundle ASCII and stamps it with the SHA-256 of its text, on a
 * first line of its own: the loader reads it as latin1 (the cheapest decode, and a one-byte
 * string V8 scans fastest) and names the bundle's code cache after the digest
 * (src/bundle-loader.ts), so code V8 compiled for one build is never offered to another.
 */
function stampBundle(file: string): void {
  const text = asciiOnly(readFileSync(file, "utf8"));
  const digest = createHash("sha256").update(text, "latin1").digest("hex");
  writeFileSync(file, `// psi-app-bundle sha256=${digest}\n${text}`, "latin1");
}

/** The application bundles (dist/<name>.cjs) and their entries. */
const bundles = { app: "src/app-bundle.ts", hot: "src/hot-bundle.ts" };

const shared = {
  platform: "node",
  target: "node22",
  // one file each (below), written side by side: the build script empties dist first
  splitting: false,
  clean: false,
  // Keep `node:` in the output (STYLE): some builtins exist only under it (node:sqlite).
  removeNodeProtocol: false,
  noExternal: [/^@psi\//, "commander", "yaml", "valibot"],
  external: ["graphene-pk11", "koffi", "ofetch", "aws4"],
  esbuildPlugins: [builtinsWithoutFacade, yamlAsModule],
} satisfies Options;

export default defineConfig([
  // The bin: `psi --version` and the loader of the application bundle.
  {
    ...shared,
    entry: ["src/cli.ts"],
    format: ["esm"],
    // `psi --version` answers without reading package.json (see src/version.ts)
    define: { PSI_BUILD_VERSION: JSON.stringify(version) },
    // env -S splits the flag off (coreutils >= 8.30); npm links the file, pnpm's shim
    // copies the flags: either way Node starts with the inspector signal off.
    banner: { js: "#!/usr/bin/env -S node --disable-sigusr1" },
  },
  // The application: classic scripts that cli.js compiles with V8's code cache. One file
  // each, not chunks: with the code cache, reading and deserialising a file is cheaper
  // than each ESM import hop, and commands still evaluate only the modules they import
  // (esbuild initialises dynamically imported modules on first import). `app` is the whole
  // CLI; `hot` is `psi serve` and `psi cache status` alone (src/hot-bundle.ts), a third
  // smaller: what a start reads and deserialises grows with the file, used or not.
  {
    ...shared,
    entry: bundles,
    format: ["cjs"],
    outExtension: () => ({ js: ".cjs" }),
    define: {
      PSI_BUILD_VERSION: JSON.stringify(version),
      // the wrapper's parameter below: the bundle's own file URL
      "import.meta.url": "__psiBundleUrl",
    },
    banner: {
      js: "(function (exports, require, module, __filename, __dirname, __psiBundleUrl) {",
    },
    footer: { js: "})" },
    // ASCII only (non-ASCII escaped): the loader decodes the file as latin1, the cheapest.
    esbuildOptions(options) {
      options.charset = "ascii";
    },
    async onSuccess() {
      for (const name of Object.keys(bundles)) stampBundle(`dist/${name}.cjs`);
    },
  },
]);
