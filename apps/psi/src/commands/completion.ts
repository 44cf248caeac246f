import type { Command } from "commander";
import type { App } from "../app.js";
import { UsageError } from "../errors.js";
import { renderCliMarkdown, renderCompletion } from "../reference.js";

const SHELLS = ["bash", "zsh", "fish"] as const;

/** `psi completion bash|zsh|fish`: a completion script generated from the command tree. */
export function registerCompletion(program: Command, app: App): void {
  program
    .command("completion")
    .description("print a shell completion script (bash, zsh or fish), generated from the commands")
    .argument("<shell>", "bash, zsh or fish")
    .action((shell: string) => {
      // `markdown` is docs/cli.md (scripts use it; it is not a shell, so it is not listed).
      if (shell === "markdown") {
        app.io.stdout.write(renderCliMarkdown(program));
        return;
      }
      if (!(SHELLS as readonly string[]).includes(shell)) {
        throw new UsageError(`no completion for "${shell}": use bash, zsh or fish`);
      }
      app.io.stdout.write(renderCompletion(program, shell as (typeof SHELLS)[number]));
    });
}
