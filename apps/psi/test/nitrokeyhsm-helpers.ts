import { chmod, writeFile } from "node:fs/promises";
import type { NitrokeyHsmConfig } from "@psi/core";
import { runPsiBytes } from "./run-psi.js";

/** The report commands, which print JSON when stdout is not a terminal. */
const REPORTS = new Set(["status", "preflight"]);

/**
 * Runs the CLI in-process with its own streams and environment; stdout as bytes. Reports
 * run as at a terminal (tables), unless `tty` says otherwise; everything else as piped.
 */
export function psi(
  args: string[],
  options: { env: Record<string, string>; stdin?: string | Uint8Array; tty?: boolean },
) {
  const report = args[0] === "nitrokeyhsm" && REPORTS.has(args[1] ?? "");
  return runPsiBytes(args, { ...options, tty: options.tty ?? report });
}

/** Writes a config whose providers.nitrokeyhsm block is `hsm` (JSON is YAML). */
export async function writeHsmConfig(
  path: string,
  stateDir: string,
  hsm: NitrokeyHsmConfig | undefined,
): Promise<void> {
  const block = hsm === undefined ? "" : `providers:\n  nitrokeyhsm: ${JSON.stringify(hsm)}\n`;
  await writeFile(path, `state_dir: ${JSON.stringify(stateDir)}\n${block}`);
  // it may hold a PIN: 0600, as psi asks of such files
  await chmod(path, 0o600);
}
