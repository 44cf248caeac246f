import type { LogLevel } from "@psi/core";
import { parseLogLevel } from "@psi/core";
import type { Command } from "commander";
import { type App, createApp, type GlobalOptions, type RunOptions } from "./app.js";
import { allCommandGroups, type CommandGroup, commandGroup } from "./commands/index.js";
import { EXIT_OK, EXIT_USAGE, reportFailure } from "./errors.js";
import { resolveGlobals } from "./globals.js";
import { runPlain } from "./plain.js";
import { VERSION } from "./version.js";

export { EXIT_ERROR, EXIT_OK, EXIT_USAGE } from "./errors.js";

/**
 * Builds the command tree for one run: the global options, then only the command group
 * `argv` names (all of them for `--help`, no command or a name none registers).
 */
export async function createProgram(app: App, argv: readonly string[] = []): Promise<Command> {
  // Loaded here, not at import: the hot commands never build the tree (plain.ts).
  const { Command, InvalidArgumentError, Option } = await import("commander");
  const levelArgument = (value: string): LogLevel => {
    const level = parseLogLevel(value);
    if (!level) {
      throw new InvalidArgumentError("expected debug, info, warn (warning) or error, in any case");
    }
    return level;
  };
  const program = new Command("psi")
    .description(
      "PSI: host-local secret broker for Podman's shell secret driver.\n" +
        "Serves container secrets from Infisical, a PKCS#11 HSM or sealed local secrets,\n" +
        "with an encrypted cache that keeps containers starting while a provider is down.",
    )
    .version(VERSION, "-V, --version")
    .option(
      "-c, --config <path>",
      "configuration file (default: /etc/psi/config.yaml as root, ~/.config/psi/config.yaml otherwise; env PSI_CONFIG)",
    )
    .addOption(
      new Option(
        "--log-level <level>",
        "debug, info, warn or error (any case; WARNING, CRITICAL as in the Python psi; env PSI_LOG_LEVEL)",
      ).argParser(levelArgument),
    )
    .option(
      "--log-json",
      "JSON log lines even on a terminal (env PSI_LOG_JSON=1; default: JSON when stderr is not a terminal)",
    )
    .option("--json", "machine-readable output (snake_case keys)")
    .option("--debug", "show stack traces and debug logs")
    .showHelpAfterError("(run with --help for usage)")
    .configureOutput({
      writeOut: (text) => app.io.stdout.write(text),
      writeErr: (text) => app.io.stderr.write(text),
    })
    .exitOverride();
  program.hook("preAction", (_root, action) => {
    app.setGlobals(resolveGlobals(action.optsWithGlobals<GlobalOptions>(), app.env));
  });
  const name = commandWord(program, argv);
  const only = name === undefined ? undefined : await commandGroup(name);
  const groups: CommandGroup[] = only ? [only] : await allCommandGroups();
  for (const register of groups) register(program, app);
  (await import("./reference.js")).addReferenceHelp(program);
  return program;
}

/** The first word of `argv` that is not a global option or an option's value. */
function commandWord(program: Command, argv: readonly string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i] as string;
    if (word === "--") return argv[i + 1];
    if (!word.startsWith("-") || word === "-") return word;
    if (word.includes("=")) continue;
    const option = program.options.find((o) => o.short === word || o.long === word);
    if (option === undefined) return undefined; // unknown here: let commander see every command
    if (option.required || option.optional) i++;
  }
  return undefined;
}

/** Runs the CLI and returns the exit code; prints errors, never throws. */
export async function runCli(argv: string[], options: RunOptions): Promise<number> {
  const plain = await runPlain(argv, options);
  if (plain !== undefined) return plain;
  const app = createApp(options.io, options.env, options.uid);
  let commander: typeof import("commander") | undefined;
  try {
    commander = await import("commander");
    const program = await createProgram(app, argv);
    await program.parseAsync(argv, { from: "user" });
    return app.exitCode;
  } catch (error) {
    if (commander && error instanceof commander.CommanderError) {
      if (
        error.code === "commander.helpDisplayed" ||
        error.code === "commander.version" ||
        error.code === "commander.help"
      ) {
        return EXIT_OK;
      }
      return EXIT_USAGE;
    }
    return reportFailure(error, options.io.stderr, app.globals().debug === true);
  }
}
