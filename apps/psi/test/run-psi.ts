import { PassThrough, Readable } from "node:stream";
import { runCli } from "../src/main.js";

/** How a test runs the CLI in-process: its environment, stdin, uid and whether stdout is a TTY. */
export interface RunPsiOptions {
  env: Record<string, string>;
  stdin?: string | Uint8Array;
  uid?: number;
  tty?: boolean;
}

/** One in-process CLI run with stdout as bytes (for commands that print secret bytes). */
export interface PsiRunBytes {
  code: number;
  stdout: Buffer;
  stderr: string;
}

/** Runs the CLI in-process with its own streams, environment and uid; stdout as bytes. */
export async function runPsiBytes(args: string[], options: RunPsiOptions): Promise<PsiRunBytes> {
  const stdout = new PassThrough() as PassThrough & { isTTY?: boolean };
  stdout.isTTY = options.tty ?? false;
  const stderr = new PassThrough();
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  stdout.on("data", (chunk: Buffer) => out.push(chunk));
  stderr.on("data", (chunk: Buffer) => err.push(chunk));
  const stdin = Readable.from(options.stdin === undefined ? [] : [Buffer.from(options.stdin)]);
  const code = await runCli(args, {
    io: { stdout, stderr, stdin },
    env: options.env,
    uid: options.uid ?? 1000,
  });
  return { code, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString("utf8") };
}

/** Runs the CLI in-process; stdout as text. */
export async function runPsi(
  args: string[],
  options: RunPsiOptions,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const run = await runPsiBytes(args, options);
  return { ...run, stdout: run.stdout.toString("utf8") };
}
