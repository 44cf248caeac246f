import { defineConfig } from "tsup";

// One bundle for the CLI: the workspace packages and the pure-JS dependencies are
// compiled in (an ESM graph of ~120 files costs more to load than the code itself), split
// at every dynamic import so a command loads only its own part. Native addons stay
// external, loaded on demand by the commands that need them.
export default defineConfig({
  entry: ["src/cli.ts"],
  format: ["esm"],
  platform: "node",
  splitting: true,
  sourcemap: true,
  clean: true,
  target: "node22",
  noExternal: [/^@psi\//, "commander", "yaml", "valibot"],
  external: ["graphene-pk11", "koffi", "ofetch", "aws4"],
  banner: {
    js: [
      "#!/usr/bin/env node",
      // bundled CommonJS (commander, yaml, aws4) calls require() for Node built-ins
      'import { createRequire as __psiCreateRequire } from "node:module";',
      "const require = __psiCreateRequire(import.meta.url);",
    ].join("\n"),
  },
});
