import { writeFile } from "node:fs/promises";
import { PassThrough, Readable } from "node:stream";
import type { NitrokeyHsmConfig } from "@psi/core";
import { runCli } from "../src/main.js";

/** One in-process CLI run. */
export interface Run {
  code: number;
  stdout: Buffer;
  stderr: string;
}

/** Runs the CLI in-process with its own streams, environment and uid. */
export async function psi(
  args: string[],
  options: { env: Record<string, string>; stdin?: string | Uint8Array },
): Promise<Run> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  stdout.on("data", (chunk: Buffer) => out.push(chunk));
  stderr.on("data", (chunk: Buffer) => err.push(chunk));
  const stdin = Readable.from(options.stdin === undefined ? [] : [Buffer.from(options.stdin)]);
  const code = await runCli(args, { io: { stdout, stderr, stdin }, env: options.env, uid: 1000 });
  return { code, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString("utf8") };
}

/** Writes a config whose providers.nitrokeyhsm block is `hsm` (JSON is YAML). */
export async function writeHsmConfig(
  path: string,
  stateDir: string,
  hsm: NitrokeyHsmConfig | undefined,
): Promise<void> {
  const block = hsm === undefined ? "" : `providers:\n  nitrokeyhsm: ${JSON.stringify(hsm)}\n`;
  await writeFile(path, `state_dir: ${JSON.stringify(stateDir)}\n${block}`);
}
