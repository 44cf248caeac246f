// Replaced with the package's version by the build (tsup `define`); undefined from source.
declare const PSI_BUILD_VERSION: string | undefined;

// Entry point of the `psi` binary: everything else is in main.ts so tests can run the
// CLI in-process with their own streams and environment. This file imports nothing at
// load time (process.getBuiltinModule is synchronous and skips the ESM facades): `psi
// --version` answers from here, every other command loads main.js (and through it
// commander and only its own command group) on demand.
const self = import.meta.filename;
const invoked = process.argv[1];
const realpath = (path: string) => process.getBuiltinModule("node:fs").realpathSync(path);
if (invoked && (invoked === self || realpath(invoked) === realpath(self))) {
  const argv = process.argv.slice(2);
  if (argv.length === 1 && (argv[0] === "--version" || argv[0] === "-V")) {
    // The build inlines the version, so the bundle's cli.js loads no other file for this.
    const version =
      typeof PSI_BUILD_VERSION === "string"
        ? PSI_BUILD_VERSION
        : (await import("./version.js")).VERSION;
    process.stdout.write(`${version}\n`);
  } else {
    // Before anything else: serve and demo re-exec with their Node flags (inspector off).
    await (await import("./node-flags.js")).ensureNodeFlags();
    const uid = process.getuid?.() ?? 1000;
    const { enablePsiCompileCache } = await import("./compile-cache.js");
    enablePsiCompileCache(process.env, uid);
    // `psi ... | head` closes the pipe early: end quietly, as other Unix tools do, instead
    // of dying with an unhandled EPIPE stack trace.
    const quietOnEpipe = (stream: NodeJS.WriteStream) => {
      if (stream.listenerCount("error") === 0)
        stream.on("error", (error: NodeJS.ErrnoException) => {
          if (error.code !== "EPIPE") throw error;
          process.exit(process.exitCode ?? 0);
        });
      return stream;
    };
    const options = {
      // Getters: Node builds each stdio stream on first use, and serve never reads stdin.
      io: {
        get stdout() {
          return quietOnEpipe(process.stdout);
        },
        get stderr() {
          return quietOnEpipe(process.stderr);
        },
        get stdin() {
          return process.stdin;
        },
      },
      env: process.env,
      uid,
    };
    const { runCli } = await import("./main.js");
    process.exitCode = await runCli(argv, options);
  }
}
