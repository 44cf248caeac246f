import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A fresh temporary directory and a function that removes it. */
export async function tempDir(
  prefix = "psi-test-",
): Promise<{ path: string; cleanup: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  return { path, cleanup: () => rm(path, { recursive: true, force: true }) };
}

/**
 * Fails (on CI) or skips loudly (developer machine without the tool) when a command the
 * test needs is missing. Returns true when the test should be skipped.
 */
export function requireTool(available: boolean, what: string, debianPackage: string): boolean {
  if (available) return false;
  const message = `${what} is missing: install the Debian package "${debianPackage}" (CONTRIBUTING.md lists them)`;
  if (process.env["CI"]) throw new Error(message);
  console.warn(`SKIPPING: ${message}`);
  return true;
}
