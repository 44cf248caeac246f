import { chmod, writeFile } from "node:fs/promises";
import type { NitrokeyHsmConfig } from "@psi/core";
import { runPsiBytes } from "./run-psi.js";

/** Runs the CLI in-process with its own streams and environment; stdout as bytes. */
export function psi(
  args: string[],
  options: { env: Record<string, string>; stdin?: string | Uint8Array },
) {
  return runPsiBytes(args, options);
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
