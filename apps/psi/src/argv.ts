// Reading a psi command line before commander does: cli.ts needs the command word to pick
// the code cache, node-flags.ts to know whether to re-exec, plain.ts to skip commander.
// No imports: cli.ts inlines this file and `psi --version` evaluates it.

/** Global options that take a value (src/main.ts): the word after them is no command. */
export const GLOBAL_VALUED: ReadonlySet<string> = new Set(["-c", "--config", "--log-level"]);

/**
 * The words of a psi argument list that are not options or global options' values
 * (`cache status` in `-c f cache status --verify`); everything after `--` is a word.
 */
export function commandWords(args: readonly string[]): string[] {
  const words: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--") return [...words, ...args.slice(i + 1)];
    if (!arg.startsWith("-")) words.push(arg);
    else if (GLOBAL_VALUED.has(arg)) i++;
  }
  return words;
}

/** The command word of a psi argument list (`serve` in `-c f serve --socket s`). */
export function commandOf(args: readonly string[]): string | undefined {
  return commandWords(args)[0];
}
