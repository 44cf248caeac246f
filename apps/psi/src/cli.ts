import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { enablePsiCompileCache } from "./compile-cache.js";
import { VERSION } from "./version.js";

// Entry point of the `psi` binary: everything else is in main.ts so tests can run the
// CLI in-process with their own streams and environment. This file loads only Node
// built-ins: `psi --version` answers from here, every other command loads main.js (and
// through it commander and only its own command group) on demand.
const self = fileURLToPath(import.meta.url);
if (process.argv[1] && realpathSync(process.argv[1]) === realpathSync(self)) {
  const argv = process.argv.slice(2);
  const uid = process.getuid?.() ?? 1000;
  if (argv.length === 1 && (argv[0] === "--version" || argv[0] === "-V")) {
    process.stdout.write(`${VERSION}\n`);
  } else {
    enablePsiCompileCache(process.env, uid);
    const { runCli } = await import("./main.js");
    process.exitCode = await runCli(argv, {
      // Getters: Node builds each stdio stream on first use, and serve never reads stdin.
      io: {
        get stdout() {
          return process.stdout;
        },
        get stderr() {
          return process.stderr;
        },
        get stdin() {
          return process.stdin;
        },
      },
      env: process.env,
      uid,
    });
  }
}
