import { defineConfig } from "tsup";

export default defineConfig({
  entry: ["src/cli.ts"],
  format: ["esm"],
  clean: true,
  target: "node22",
  // Keep `node:` in the output (STYLE): some builtins exist only under it (node:sqlite).
  removeNodeProtocol: false,
  banner: { js: "#!/usr/bin/env node" },
});
