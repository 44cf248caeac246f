import { defineConfig } from "tsup";

export default defineConfig({
  // host.ts also on its own (`@psi/ops/host`): every CLI run opens the host, and must not
  // load the rest of the operations to do it.
  entry: ["src/index.ts", "src/host.ts"],
  format: ["esm"],
  dts: { compilerOptions: { customConditions: [] } },
  clean: true,
  target: "node22",
  // Keep `node:` in the output (STYLE): some builtins exist only under it (node:sqlite).
  removeNodeProtocol: false,
});
