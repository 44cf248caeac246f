// Entry of the small application bundle (dist/hot.cjs) that cli.ts loads for `psi serve`
// and `psi cache status`: the plain path only (plain.ts), without commander, the other
// commands and the help reference, so those two starts read and deserialise a third less
// code. A command line plain.ts does not take (`psi serve --help`, a typo) gets undefined
// from runPlain, and cli.ts runs it with the whole CLI (dist/app.cjs).
export { ensureNodeFlags } from "./node-flags.js";
export { runPlain } from "./plain.js";
export { processIo } from "./process-io.js";
