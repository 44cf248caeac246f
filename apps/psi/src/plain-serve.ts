// `psi serve` as the units, the image and the quadlet start it, without commander. Every
// host pays serve's start when it boots and containers wait for its socket; building
// commander's tree is a fifth of the work before the socket answers. Only the argument
// shapes below take this path; anything else (--help, a typo, an unknown option, a bad
// log level) goes through commander, whose parsing and usage errors define the CLI.
import { parseLogLevel } from "@psi/core";
import { createApp, type Io } from "./app.js";
import { describeError, UsageError } from "./errors.js";
import { type GlobalFlags, resolveGlobals } from "./globals.js";

/** What a plain `psi serve` command line asks for. */
export interface PlainServe {
  flags: GlobalFlags;
  socket?: string;
}

const VALUED = new Set(["-c", "--config", "--log-level", "--socket"]);
const SWITCHES = new Set(["--log-json", "--json", "--debug"]);

/**
 * Reads `argv` when it is `serve` with only global options and `--socket` (each at most
 * once, `--opt value` or `--opt=value`, before or after the word); undefined otherwise.
 */
export function plainServeArgs(argv: readonly string[]): PlainServe | undefined {
  const values = new Map<string, string>();
  const switches = new Set<string>();
  let command = 0;
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i] as string;
    if (word === "serve") {
      command++;
      continue;
    }
    const eq = word.startsWith("--") ? word.indexOf("=") : -1;
    const name = eq === -1 ? word : word.slice(0, eq);
    if (SWITCHES.has(word) && !switches.has(word)) {
      switches.add(word);
      continue;
    }
    const key = name === "-c" ? "--config" : name;
    if (!VALUED.has(name) || values.has(key)) return undefined;
    const value = eq === -1 ? argv[++i] : word.slice(eq + 1);
    // A missing value, or one that looks like an option, is commander's to report.
    if (value === undefined || value === "" || value.startsWith("-")) return undefined;
    values.set(key, value);
  }
  if (command !== 1) return undefined;
  const levelText = values.get("--log-level");
  const logLevel = levelText === undefined ? undefined : parseLogLevel(levelText);
  if (levelText !== undefined && !logLevel) return undefined;
  const config = values.get("--config");
  const socket = values.get("--socket");
  return {
    flags: {
      ...(config === undefined ? {} : { config }),
      ...(logLevel ? { logLevel } : {}),
      logJson: switches.has("--log-json"),
      json: switches.has("--json"),
      debug: switches.has("--debug"),
    },
    ...(socket === undefined ? {} : { socket }),
  };
}

/** Runs a plain `psi serve` and returns the exit code, as runCli would for the same words. */
export async function runPlainServe(
  plain: PlainServe,
  options: { io: Io; env: Readonly<Record<string, string | undefined>>; uid: number },
): Promise<number> {
  const app = createApp(options.io, options.env, options.uid);
  try {
    app.setGlobals(resolveGlobals(plain.flags, options.env));
    const { runServe } = await import("./commands/serve.js");
    await runServe(app, plain.socket === undefined ? {} : { socket: plain.socket });
    return app.exitCode;
  } catch (error) {
    if (error instanceof UsageError) {
      options.io.stderr.write(`psi: ${error.message}\n(run with --help for usage)\n`);
      return 2;
    }
    options.io.stderr.write(describeError(error, app.globals().debug === true));
    return 1;
  }
}
