// The hot commands skip commander (src/plain.ts): `psi serve` as units start it and `psi
// cache status`. These pin the shapes that take that path, check commander reads each of
// them the same way, and check every other shape (help, typos, bad values) still gets
// commander's usage errors.
import { PassThrough } from "node:stream";
import type { Command } from "commander";
import { describe, expect, it } from "vitest";
import { createApp } from "../src/app.js";
import { createProgram } from "../src/main.js";
import { plainArgs } from "../src/plain.js";
import { runPsi } from "./run-psi.js";

/** What commander makes of `argv`: the command, the globals and its options (nothing runs). */
async function viaCommander(argv: string[]) {
  const app = createApp(
    { stdout: new PassThrough(), stderr: new PassThrough(), stdin: new PassThrough() },
    {},
    1000,
  );
  const program = await createProgram(app, argv);
  let ran: { words: string; options: Record<string, unknown> } | undefined;
  const record = (command: Command, words: string[]) => {
    for (const child of command.commands) {
      const path = [...words, child.name()];
      if (child.commands.length > 0) record(child, path);
      else
        child.action((options: Record<string, unknown>) => {
          ran = { words: path.join(" "), options };
        });
    }
  };
  record(program, []);
  program.exitOverride();
  await program.parseAsync(argv, { from: "user" });
  return { globals: app.globals(), ...ran };
}

const PLAIN: string[][] = [
  ["serve"],
  ["serve", "--config", "/etc/psi/config.yaml"],
  ["-c", "/etc/psi/config.yaml", "serve", "--socket", "/run/psi/psi.sock"],
  ["serve", "--config=/c.yaml", "--socket=/s.sock", "--log-level", "WARNING"],
  ["--log-level=debug", "--log-json", "serve", "--json", "--debug"],
  ["cache", "status"],
  ["-c", "/etc/psi/config.yaml", "cache", "status", "--verify"],
  ["cache", "--json", "status", "--config=/c.yaml", "--log-level", "error"],
];

const NOT_PLAIN: string[][] = [
  [],
  ["setup"],
  ["serve", "--help"],
  ["serve", "-h"],
  ["serve", "extra"],
  ["serve", "serve"],
  ["serve", "--socket"],
  ["serve", "--socket", "--debug"],
  ["serve", "--log-level", "loud"],
  ["serve", "-c", "/a", "--config", "/b"],
  ["serve", "--debug", "--debug"],
  ["serve", "--port", "8080"],
  ["serve", "--verify"],
  ["cache", "status", "--socket", "/s.sock"],
  ["cache", "status", "--help"],
  ["cache", "status", "extra"],
  ["cache", "status", "--verify", "--verify"],
  ["cache"],
  ["status"],
  ["cache", "init", "--backend", "keyfile"],
];

describe("plain `psi serve` command lines", () => {
  it.each(PLAIN)("%j: read as commander reads it", async (...argv) => {
    const plain = plainArgs(argv);
    expect(plain).toBeDefined();
    const commander = await viaCommander(argv);
    expect(plain?.command.words.join(" ")).toBe(commander.words);
    expect(plain?.flags).toEqual({
      config: commander.globals.config,
      logLevel: commander.globals.logLevel,
      logJson: commander.globals.logJson,
      json: commander.globals.json,
      debug: commander.globals.debug,
    });
    // Commander's option names are camelCase without the dashes (--socket → socket).
    const own = Object.fromEntries(
      Object.entries(plain?.options ?? {}).map(([key, value]) => [key.slice(2), value]),
    );
    expect(own).toEqual(commander.options);
  });

  it.each(NOT_PLAIN)("%j: left to commander", (...argv) => {
    expect(plainArgs(argv)).toBeUndefined();
  });

  it("a bad PSI_LOG_LEVEL is the same usage error (exit 2) on the plain path", async () => {
    const run = await runPsi(["serve", "--socket", "/nonexistent/psi.sock"], {
      env: { PSI_LOG_LEVEL: "loud" },
    });
    expect(run.code).toBe(2);
    expect(run.stderr).toBe(
      "psi: PSI_LOG_LEVEL=loud is not a log level (debug, info, warn/warning or error)\n(run with --help for usage)\n",
    );
  });

  it("`psi serve --log-level loud` still gets commander's usage error", async () => {
    const run = await runPsi(["serve", "--log-level", "loud"], { env: {} });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("expected debug, info, warn (warning) or error");
  });
});
