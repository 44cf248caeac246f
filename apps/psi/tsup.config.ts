import { defineConfig } from "tsup";

export default defineConfig({
  entry: ["src/cli.ts"],
  format: ["esm"],
  clean: true,
  target: "node22",
  // Keep `node:` in the output (STYLE): some builtins exist only under it (node:sqlite).
  removeNodeProtocol: false,
  // env -S splits the flag off (coreutils >= 8.30); npm links the file, pnpm's shim copies
  // the flags: either way Node starts with the inspector signal off (src/no-inspector.ts).
  banner: { js: "#!/usr/bin/env -S node --disable-sigusr1" },
});
