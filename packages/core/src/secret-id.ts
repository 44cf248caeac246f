import { PsiError } from "./errors.js";

const MAX_ID_BYTES = 255;

/** Why `id` is not a usable secret ID (SPEC §3), or undefined when it is. */
export function secretIdProblem(id: string): string | undefined {
  if (id.length === 0) return "it is empty";
  if (id === "." || id === "..") return `"${id}" is not a file name`;
  if (/[/\\\0]/.test(id)) return "it contains '/', '\\' or a NUL byte";
  if (Buffer.byteLength(id, "utf8") > MAX_ID_BYTES)
    return `it is longer than ${MAX_ID_BYTES} bytes`;
  return undefined;
}

/** Throws `secret_id.invalid` unless `id` is safe to use as a file name in state_dir. */
export function assertSecretId(id: string): string {
  const problem = secretIdProblem(id);
  if (problem !== undefined) {
    throw new PsiError("secret_id.invalid", `invalid secret ID: ${problem}`, {
      hint: "secret IDs are Podman's hex secret IDs: 1-255 bytes, no '/', '\\' or NUL, not '.' or '..'",
    });
  }
  return id;
}

/**
 * True for files in state_dir that are PSI's own, never listed as secrets (SPEC §3). The
 * key files are included because an operator may put `cache.key_file` in state_dir; a
 * Podman secret ID is hex and never takes one of these names.
 */
export function isReservedStateFile(name: string): boolean {
  return (
    name.startsWith(".") ||
    name === "cache.enc" ||
    name === "cache.key" ||
    name === "cache.keyfile" ||
    name === "nitrokeyhsm-pubkey.der" ||
    name.endsWith(".pin")
  );
}
