import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { runCli } from "./main.js";
import { disableInspectorSignal } from "./no-inspector.js";

// Entry point of the `psi` binary: everything else is in main.ts so tests can run the
// CLI in-process with their own streams and environment.
const self = fileURLToPath(import.meta.url);
if (process.argv[1] && realpathSync(process.argv[1]) === realpathSync(self)) {
  await disableInspectorSignal();
  const code = await runCli(process.argv.slice(2), {
    io: { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin },
    env: process.env,
    uid: process.getuid?.() ?? 1000,
  });
  process.exitCode = code;
}
