import { readFileSync } from "node:fs";
import { defineConfig } from "tsup";

const { version } = JSON.parse(readFileSync("package.json", "utf8")) as { version: string };

// One bundle for the CLI: the workspace packages and the pure-JS dependencies are
// compiled in (an ESM graph of ~120 files costs more to load than the code itself), split
// at every dynamic import so a command loads only its own part. Native addons stay
// external, loaded on demand by the commands that need them.
export default defineConfig({
  entry: ["src/cli.ts"],
  format: ["esm"],
  platform: "node",
  splitting: true,
  clean: true,
  target: "node22",
  // Keep `node:` in the output (STYLE): some builtins exist only under it (node:sqlite).
  removeNodeProtocol: false,
  noExternal: [/^@psi\//, "commander", "yaml", "valibot"],
  external: ["graphene-pk11", "koffi", "ofetch", "aws4"],
  // `psi --version` answers without reading package.json (see src/version.ts)
  define: { PSI_BUILD_VERSION: JSON.stringify(version) },
  banner: {
    js: [
      // env -S splits the flag off (coreutils >= 8.30); npm links the file, pnpm's shim
      // copies the flags: either way Node starts with the inspector signal off.
      "#!/usr/bin/env -S node --disable-sigusr1",
      // Bundled CommonJS (commander, yaml) calls require() for Node built-ins. No static
      // import: that would load node:module's ESM facade in every chunk, cli.js included.
      'const require = process.getBuiltinModule("node:module").createRequire(import.meta.url);',
    ].join("\n"),
  },
});
