import { dirname } from "node:path";
import { ensureDir, PsiError, writeFileAtomic } from "@psi/core";
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
  /** `base64`: the secret holds base64 and the file gets the decoded bytes (`--base64`). */
  decode?: "base64";
  call?: CallOptions;
}

const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;

/** The bytes a base64 secret holds (standard or URL alphabet, whitespace ignored). */
function decodeBase64(value: string, key: string): Buffer {
  const compact = value.replace(/\s+/g, "");
  if (!BASE64.test(compact) || compact.replace(/=+$/, "").length % 4 === 1) {
    throw new PsiError("input.bad_base64", `secret ${key} is not valid base64`, {
      hint: "drop --base64 to write the value as it is",
    });
  }
  return Buffer.from(compact, "base64");
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
  const data =
    options.decode === "base64" ? decodeBase64(value, options.key) : Buffer.from(value, "utf8");
  try {
    // A missing parent directory is created (0755, as the reference's mkdir -p with the
    // usual umask), so a unit can write into /run/app/ on first boot.
    await ensureDir(dirname(options.file), 0o755);
    await writeFileAtomic(options.file, data, { mode });
    return { file: options.file, mode, bytes: data.length };
  } finally {
    data.fill(0);
  }
}
