// Entry of the application bundle (dist/app.cjs) that cli.ts loads with V8's code cache
// (bundle-loader.ts): the CLI and the re-exec of long-running commands with their flags.
export { runCli } from "./main.js";
export { ensureNodeFlags } from "./node-flags.js";
export { processIo } from "./process-io.js";
