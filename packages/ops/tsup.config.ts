import { defineConfig } from "tsup";

export default defineConfig({
  entry: ["src/index.ts"],
  format: ["esm"],
  dts: { compilerOptions: { customConditions: [] } },
  clean: true,
  target: "node22",
  // Keep `node:` in the output (STYLE): some builtins exist only under it (node:sqlite).
  removeNodeProtocol: false,
});
