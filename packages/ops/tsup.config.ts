import { defineConfig } from "tsup";

export default defineConfig({
  // host.ts also on its own (`@psi/ops/host`): every CLI run opens the host, and must not
  // load the rest of the operations to do it. cache.ts likewise (`@psi/ops/cache`): `psi
  // cache status` is a hot command and needs none of the lookup server, unitgen or setup.
  entry: ["src/index.ts", "src/host.ts", "src/cache.ts"],
  format: ["esm"],
  dts: { compilerOptions: { customConditions: [] } },
  clean: true,
  target: "node22",
  // Keep `node:` in the output (STYLE): some builtins exist only under it (node:sqlite).
  removeNodeProtocol: false,
});
