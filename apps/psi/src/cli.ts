// Replaced with the package's version by the build (tsup `define`); undefined from source.
declare const PSI_BUILD_VERSION: string | undefined;

// Entry point of the `psi` binary: everything else is in main.ts so tests can run the
// CLI in-process with their own streams and environment. `psi --version` answers from
// here; every other command loads an application bundle built by tsup.config.ts with V8's
// code cache (bundle-loader.ts): `psi serve` and `psi cache status` the small one
// (dist/hot.cjs: plain.ts and what those two commands use), the others, and any command
// line the small one does not take, the whole CLI (dist/app.cjs: main.ts, the packages
// and the pure-JS dependencies). This file imports only the small modules below, which
// the build inlines: process.getBuiltinModule is synchronous and skips the ESM facades.
import { commandWords } from "./argv.js";
import { loadBundle } from "./bundle-loader.js";
import { enablePsiCompileCache } from "./compile-cache.js";

/** What the bundles export (src/app-bundle.ts, src/hot-bundle.ts). */
type AppBundle = typeof import("./app-bundle.js");
type HotBundle = typeof import("./hot-bundle.js");

/** The code cache each command gets: the hot ones their own, the others share one. */
function codeCacheKind(argv: readonly string[]): string {
  const [command, subcommand] = commandWords(argv);
  if (command === "serve" || command === "demo") return command;
  if (command === "cache" && subcommand === "status") return "cache-status";
  return "cli";
}

/**
 * Loads dist/`name` with the code cache of `kind` from `cacheDir`; a missing or damaged
 * bundle ends the run.
 */
function load<T>(name: string, kind: string, uid: number, cacheDir: string | undefined): T {
  const bundle = process.getBuiltinModule("node:path").join(import.meta.dirname, name);
  try {
    return loadBundle<T>(bundle, {
      cacheDir,
      kind,
      uid,
      // serve and demo keep running: write their cache once they are up, not only at exit
      writeAfterMs: kind === "serve" || kind === "demo" ? 3000 : undefined,
    }).exports;
  } catch (error) {
    // A partial or damaged install: say which file, and how to get a whole one back.
    process.stderr.write(
      `psi: cannot load ${bundle}: ${error instanceof Error ? error.message : String(error)}\n` +
        "hint: reinstall psi (npm install -g @psi/cli, or pull the image again)\n",
    );
    process.exit(1);
  }
}

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
    // One short line: written on the descriptor, without building Node's stdout stream.
    try {
      process.getBuiltinModule("node:fs").writeSync(1, `${version}\n`);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      // a full non-blocking pipe: Node's stream waits for it; a reader gone: nothing to say
      if (code === "EAGAIN") process.stdout.write(`${version}\n`);
      else if (code !== "EPIPE") throw error;
    }
  } else {
    const uid = process.getuid?.() ?? 1000;
    const kind = codeCacheKind(argv);
    const env = process.env;
    const cacheDir = enablePsiCompileCache(env, uid);
    const hot = kind === "serve" || kind === "cache-status";
    let exitCode: number | undefined;
    if (hot) {
      const small = load<HotBundle>("hot.cjs", kind, uid, cacheDir);
      // Before the command runs: serve re-execs with its Node flags (inspector off).
      await small.ensureNodeFlags();
      exitCode = await small.runPlain(argv, { io: small.processIo(), env, uid });
    }
    if (exitCode === undefined) {
      // the hot commands' other command lines (--help, a typo) share the CLI's code cache
      const app = load<AppBundle>("app.cjs", hot ? "cli" : kind, uid, cacheDir);
      // Before the command runs: serve and demo re-exec with their Node flags (inspector
      // off); hot.cjs has done so already for the hot commands' other command lines.
      if (!hot) await app.ensureNodeFlags();
      exitCode = await app.runCli(argv, { io: app.processIo(), env, uid });
    }
    // Done, and every byte is out: the CLI writes stdout and stderr synchronously (files,
    // pipes and sockets on the descriptor, process-io.ts; terminals synchronously on Linux).
    // Exiting here skips Node tearing down a heap that holds the application's code, ~3 ms
    // of every short command (docs/performance.md); exit handlers, such as the code
    // cache's write, still run.
    process.exit(exitCode);
  }
}
