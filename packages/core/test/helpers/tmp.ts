import { accessSync, constants } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";

// @psi/testkit depends on @psi/core, so core's own tests keep this small copy of tempDir()
// and requireTool().

/** A fresh temporary directory and a function that removes it. */
export async function tempDir(
  prefix = "psi-core-test-",
): Promise<{ path: string; cleanup: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  return { path, cleanup: () => rm(path, { recursive: true, force: true }) };
}

/** True when `name` is an executable on PATH. */
export function onPath(name: string): boolean {
  return (process.env["PATH"] ?? "").split(delimiter).some((dir) => {
    try {
      accessSync(join(dir, name), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/**
 * testkit's requireTool: a missing tool fails (naming the Debian package) when CI is set,
 * and is a loud skip otherwise. True when the test should be skipped.
 */
export function requireTool(available: boolean, what: string, debianPackage: string): boolean {
  if (available) return false;
  const message = `${what} is missing: install the Debian package "${debianPackage}" (TESTING.md)`;
  if (process.env["CI"]) throw new Error(message);
  console.warn(`SKIPPING: ${message}`);
  return true;
}
