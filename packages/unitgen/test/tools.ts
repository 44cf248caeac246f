import { spawnSync } from "node:child_process";
import { requireTool } from "@psi/testkit/tmp";

/** True when `command` runs; otherwise fails (CI) or skips loudly (requireTool). */
export function hasTool(
  command: string,
  what: string,
  debianPackage: string,
  args = ["--version"],
): boolean {
  const ok = spawnSync(command, args, { stdio: "ignore" }).status === 0;
  return !requireTool(ok, what, debianPackage);
}
