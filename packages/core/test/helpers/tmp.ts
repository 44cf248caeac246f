import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

// @psi/testkit depends on @psi/core, so core's own tests keep this small copy of tempDir().

/** A fresh temporary directory and a function that removes it. */
export async function tempDir(
  prefix = "psi-core-test-",
): Promise<{ path: string; cleanup: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  return { path, cleanup: () => rm(path, { recursive: true, force: true }) };
}
