// `psi serve` as units start it skips commander (src/plain-serve.ts). These pin the shapes
// that take that path, check commander reads each of them the same way, and check every
// other shape (help, typos, bad values) still gets commander's usage errors.
import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import { createApp } from "../src/app.js";
import { createProgram } from "../src/main.js";
import { plainServeArgs } from "../src/plain-serve.js";
import { runPsi } from "./run-psi.js";

/** What commander makes of `argv` for serve: the globals and --socket (nothing runs). */
async function viaCommander(argv: string[]) {
  const app = createApp(
    { stdout: new PassThrough(), stderr: new PassThrough(), stdin: new PassThrough() },
    {},
    1000,
  );
  const program = await createProgram(app, argv);
  let socket: string | undefined;
  const serve = program.commands.find((command) => command.name() === "serve");
  serve?.action((options: { socket?: string }) => {
    socket = options.socket;
  });
  program.exitOverride();
  await program.parseAsync(argv, { from: "user" });
  return { globals: app.globals(), socket };
}

const PLAIN: string[][] = [
  ["serve"],
  ["serve", "--config", "/etc/psi/config.yaml"],
  ["-c", "/etc/psi/config.yaml", "serve", "--socket", "/run/psi/psi.sock"],
  ["serve", "--config=/c.yaml", "--socket=/s.sock", "--log-level", "WARNING"],
  ["--log-level=debug", "--log-json", "serve", "--json", "--debug"],
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
];

describe("plain `psi serve` command lines", () => {
  it.each(PLAIN)("%j: read as commander reads it", async (...argv) => {
    const plain = plainServeArgs(argv);
    expect(plain).toBeDefined();
    const commander = await viaCommander(argv);
    expect({ ...plain?.flags, socket: plain?.socket }).toEqual({
      config: commander.globals.config,
      logLevel: commander.globals.logLevel,
      logJson: commander.globals.logJson,
      json: commander.globals.json,
      debug: commander.globals.debug,
      socket: commander.socket,
    });
  });

  it.each(NOT_PLAIN)("%j: left to commander", (...argv) => {
    expect(plainServeArgs(argv)).toBeUndefined();
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
