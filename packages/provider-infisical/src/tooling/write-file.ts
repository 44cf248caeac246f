import { PsiError, writeFileAtomic } from "@psi/core";
import type { CallOptions, InfisicalClient } from "../client.js";

/** Parses an octal file mode such as `0600` or `640`; throws `input.bad_mode` otherwise. */
export function parseFileMode(text: string): number {
  if (!/^0?[0-7]{3}$/.test(text)) {
    throw new PsiError("input.bad_mode", `${JSON.stringify(text)} is not an octal file mode`, {
      hint: "write it like 0600 or 0640",
    });
  }
  return Number.parseInt(text, 8);
}

/** Options of {@link writeSecretFile}. */
export interface WriteSecretFileOptions {
  client: InfisicalClient;
  project: string;
  path: string;
  key: string;
  file: string;
  /** Permission bits of the file from its creation (default 0600). */
  mode?: number;
  call?: CallOptions;
}

/**
 * Writes one secret's value to `file` (SPEC §12 `write-file`): exactly the value's UTF-8
 * bytes, no newline added, replaced atomically with `mode` set from creation (a temp file
 * named ".psi-*" in the same directory, renamed over the target).
 */
export async function writeSecretFile(
  options: WriteSecretFileOptions,
): Promise<{ file: string; mode: number; bytes: number }> {
  const mode = options.mode ?? 0o600;
  const value = await options.client.getSecret(
    { project: options.project, path: options.path, key: options.key },
    options.call ?? { purpose: "setup" },
  );
  const data = Buffer.from(value, "utf8");
  try {
    await writeFileAtomic(options.file, data, { mode });
    return { file: options.file, mode, bytes: data.length };
  } finally {
    data.fill(0);
  }
}
