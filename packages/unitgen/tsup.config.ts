import { defineConfig } from "tsup";

export default defineConfig({
  // exec.ts also on its own (`@psi/unitgen/exec`): `psi serve` reads NODE_FLAGS at start
  // and must not load the unit renderer to do it.
  entry: ["src/index.ts", "src/exec.ts"],
  format: ["esm"],
  dts: { compilerOptions: { customConditions: [] } },
  clean: true,
  target: "node22",
  // Keep `node:` in the output (STYLE): some builtins exist only under it (node:sqlite).
  removeNodeProtocol: false,
});
