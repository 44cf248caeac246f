// The command reference is generated from the command tree: docs/cli.md must be what the
// tree renders now, every command's --help shows an example and its environment, and the
// completion scripts complete the real commands in real bash, zsh and fish.
import { execFileSync, spawnSync } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { requireTool, tempDir } from "@psi/testkit/tmp";
import { describe, expect, it } from "vitest";
import { createApp } from "../src/app.js";
import { createProgram } from "../src/main.js";
import { COMMAND_REFERENCE, commandPath, leafCommands } from "../src/reference.js";
import { runPsi } from "./run-psi.js";

const DOCS = join(import.meta.dirname, "..", "..", "..", "docs", "cli.md");
const program = () =>
  createProgram(
    createApp(
      { stdout: new PassThrough(), stderr: new PassThrough(), stdin: new PassThrough() },
      {},
      1000,
    ),
  );
const env = { HOME: "/nonexistent-home", PATH: process.env["PATH"] ?? "/usr/bin:/bin" };

describe("command reference", () => {
  it("every command has an example and its environment; every entry is a command", async () => {
    const paths = leafCommands(await program()).map(commandPath);
    expect(paths.filter((path) => !COMMAND_REFERENCE[path])).toEqual([]);
    expect(Object.keys(COMMAND_REFERENCE).filter((path) => !paths.includes(path))).toEqual([]);
  });

  it("docs/cli.md is what the command definitions render (pnpm --filter @psi/cli cli-docs)", async () => {
    const run = await runPsi(["completion", "markdown"], { env });
    expect(run.code).toBe(0);
    const committed = await readFile(DOCS, "utf8");
    expect(committed, "docs/cli.md is stale: run `pnpm --filter @psi/cli cli-docs`").toBe(
      run.stdout,
    );
    for (const path of leafCommands(await program()).map(commandPath)) {
      expect(committed).toContain(`## psi ${path}`);
    }
  });

  it("--help of each command shows one example and the environment variables it reads", async () => {
    for (const path of leafCommands(await program()).map(commandPath)) {
      const run = await runPsi([...path.split(" "), "--help"], { env });
      expect(run.code, path).toBe(0);
      expect(run.stdout, path).toContain(`Example:\n  ${COMMAND_REFERENCE[path]!.example}\n`);
      expect(run.stdout, path).toMatch(/Environment:\n(?:.*\n)*\s+PSI_CONFIG\s/);
    }
    const setup = await runPsi(["setup", "--help"], { env });
    expect(setup.stdout).toMatch(/^\s+PSI_PODMAN_SOCKET\s+Podman API socket/m);
  });

  it("psi completion with another shell is a usage error", async () => {
    const run = await runPsi(["completion", "tcsh"], { env });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("use bash, zsh or fish");
  });
});

/** What bash completes for the words typed so far (the last one may be partial). */
function bashComplete(script: string, words: string[]): string[] {
  const out = execFileSync(
    "bash",
    [
      "-c",
      `source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _psi; printf '%s\\n' "\${COMPREPLY[@]}"`,
      "bash",
      script,
      ...words,
    ],
    { encoding: "utf8" },
  );
  return out.split("\n").filter(Boolean).sort();
}

describe("psi completion", () => {
  it("bash: subcommands, flags and flag choices at every level", async () => {
    const dir = await tempDir("psi-completion-");
    try {
      const run = await runPsi(["completion", "bash"], { env });
      const script = join(dir.path, "psi.bash");
      await writeFile(script, run.stdout);
      expect(bashComplete(script, ["psi", "ca"])).toEqual(["cache"]);
      expect(bashComplete(script, ["psi", "cache", "in"])).toEqual(["init", "invalidate"]);
      expect(
        bashComplete(script, ["psi", "-c", "/etc/psi/config.yaml", "infisical", "tls", "s"]),
      ).toEqual(["status"]);
      expect(bashComplete(script, ["psi", "infisical", "env", "--format", ""])).toEqual([
        "env",
        "export",
        "json",
        "shell",
      ]);
      expect(bashComplete(script, ["psi", "setup", "--dr"])).toEqual(["--dry-run"]);
      expect(bashComplete(script, ["psi", "cache", "init", "--with-key", "t"])).toEqual([
        "tpm2",
        "tpm2+host",
      ]);
      expect(bashComplete(script, ["psi", "--log-l"])).toEqual(["--log-level"]);
    } finally {
      await dir.cleanup();
    }
  });

  const noZsh = requireTool(spawnSync("zsh", ["--version"]).status === 0, "zsh", "zsh");
  it.skipIf(noZsh)("zsh: the script loads and defines the completion", async () => {
    const run = await runPsi(["completion", "zsh"], { env });
    const out = execFileSync(
      "zsh",
      [
        "-f",
        "-c",
        // biome-ignore lint/suspicious/noTemplateCurlyInString: zsh's ${...}, not a template
        'autoload -U compinit && compinit -u; eval "$(cat)"; print -r -- ${_comps[psi]}',
      ],
      { input: run.stdout, encoding: "utf8" },
    );
    expect(out.trim()).not.toBe("");
  });

  const noFish = requireTool(spawnSync("fish", ["--version"]).status === 0, "fish", "fish");
  it.skipIf(noFish)("fish: completes subcommands and choices", async () => {
    const dir = await tempDir("psi-completion-fish-");
    try {
      const run = await runPsi(["completion", "fish"], { env });
      const script = join(dir.path, "psi.fish");
      await writeFile(script, run.stdout);
      const complete = (line: string) =>
        execFileSync(
          "fish",
          ["--no-config", "-c", 'source $argv[1]; complete -C"$argv[2]"', script, line],
          {
            encoding: "utf8",
            cwd: dir.path,
          },
        )
          .split("\n")
          .map((entry) => entry.split("\t")[0]!)
          .filter(Boolean)
          .sort();
      expect(complete("psi cache in")).toEqual(["init", "invalidate"]);
      expect(complete("psi infisical env --format ")).toEqual(["env", "export", "json", "shell"]);
      expect(complete("psi nitrokeyhsm ")).toContain("setup-pcscd");
      expect(complete("psi setup --dr")).toEqual(["--dry-run"]);
    } finally {
      await dir.cleanup();
    }
  });
});
