// The hot commands without commander: `psi serve` as the units, the image and quadlets
// start it (every host pays its start at boot, and containers wait for its socket), and
// `psi cache status`. Building commander's tree and the help reference is a fifth of their
// start. Only the argument shapes below take this path; anything else (--help, a typo, an
// unknown option, a bad log level) goes through commander, whose parsing and usage errors
// define the CLI. test/plain.test.ts holds both paths to the same reading of each shape.
// This file is also the entry of the small bundle those commands load (hot-bundle.ts):
// it must not import commander, the command groups or the help reference.
import { parseLogLevel } from "@psi/core";
import { type App, createApp, type GlobalOptions, type RunOptions } from "./app.js";
import { GLOBAL_VALUED } from "./argv.js";
import { reportFailure } from "./errors.js";
import { resolveGlobals } from "./globals.js";

/** A command that can run without commander: its words, its own options, and its action. */
interface PlainCommand {
  words: readonly string[];
  /** Options that take a value (`--opt value` or `--opt=value`). */
  valued: readonly string[];
  switches: readonly string[];
  run(app: App, options: Record<string, string | true>): Promise<void>;
}

const COMMANDS: readonly PlainCommand[] = [
  {
    words: ["serve"],
    valued: ["--socket"],
    switches: [],
    async run(app, options) {
      const { runServe } = await import("./commands/serve.js");
      const socket = options["--socket"];
      await runServe(app, typeof socket === "string" ? { socket } : {});
    },
  },
  {
    words: ["cache", "status"],
    valued: [],
    switches: ["--verify"],
    async run(app, options) {
      const { runCacheStatus } = await import("./commands/cache-status.js");
      await runCacheStatus(app, { verify: options["--verify"] === true });
    },
  },
];

const GLOBAL_SWITCHES = ["--log-json", "--json", "--debug"];

/** What a plain command line asks for. */
export interface PlainRun {
  command: PlainCommand;
  flags: GlobalOptions;
  options: Record<string, string | true>;
}

/**
 * Reads `argv` when it is one of the commands above with only global options and its own
 * (each at most once, `--opt value` or `--opt=value`, anywhere after `psi`); undefined
 * otherwise, and commander parses it.
 */
export function plainArgs(argv: readonly string[]): PlainRun | undefined {
  const words: string[] = [];
  const given = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i] as string;
    if (!word.startsWith("-")) {
      words.push(word);
      continue;
    }
    const eq = word.startsWith("--") ? word.indexOf("=") : -1;
    const name = eq === -1 ? word : word.slice(0, eq);
    const key = name === "-c" ? "--config" : name;
    if (given.has(key)) return undefined;
    if (eq === -1 && (GLOBAL_SWITCHES.includes(word) || isSwitch(word))) {
      given.set(key, true);
      continue;
    }
    if (!GLOBAL_VALUED.has(name) && !isValued(name)) return undefined;
    const value = eq === -1 ? argv[++i] : word.slice(eq + 1);
    // A missing value, or one that looks like an option, is commander's to report.
    if (value === undefined || value === "" || value.startsWith("-")) return undefined;
    given.set(key, value);
  }
  const command = COMMANDS.find((c) => c.words.join(" ") === words.join(" "));
  if (!command) return undefined;
  const options: Record<string, string | true> = {};
  for (const [key, value] of given) {
    if (GLOBAL_VALUED.has(key) || GLOBAL_SWITCHES.includes(key)) continue;
    const own = command.valued.includes(key)
      ? typeof value === "string"
      : command.switches.includes(key) && value === true;
    if (!own) return undefined;
    options[key] = value;
  }
  const level = given.get("--log-level");
  const logLevel = typeof level === "string" ? parseLogLevel(level) : undefined;
  if (level !== undefined && !logLevel) return undefined;
  const config = given.get("--config");
  if (config === true) return undefined;
  return {
    command,
    flags: {
      ...(config === undefined ? {} : { config }),
      ...(logLevel ? { logLevel } : {}),
      logJson: given.has("--log-json"),
      json: given.has("--json"),
      debug: given.has("--debug"),
    },
    options,
  };
}

function isSwitch(word: string): boolean {
  return COMMANDS.some((command) => command.switches.includes(word));
}

function isValued(name: string): boolean {
  return COMMANDS.some((command) => command.valued.includes(name));
}

/**
 * Runs `argv` when it is one of the plain commands ({@link plainArgs}) and returns its exit
 * code, printing any error as the CLI does; undefined, having done nothing, when commander
 * must read it (main.ts's runCli).
 */
export async function runPlain(
  argv: readonly string[],
  options: RunOptions,
): Promise<number | undefined> {
  const plain = plainArgs(argv);
  if (!plain) return undefined;
  const app = createApp(options.io, options.env, options.uid);
  try {
    app.setGlobals(resolveGlobals(plain.flags, options.env));
    await plain.command.run(app, plain.options);
    return app.exitCode;
  } catch (error) {
    return reportFailure(error, options.io.stderr, app.globals().debug === true);
  }
}
