import { execFile } from "node:child_process";
import type { Env } from "@psi/core";

/** How one run of a systemd or D-Bus client went; never a thrown error. */
export type ToolRun =
  | { ok: true; stdout: string }
  | {
      ok: false;
      missing: boolean;
      detail: string;
      /** All it said on stderr (or the spawn error), trimmed: for messages quoting it whole. */
      output: string;
    };

/**
 * Runs `file` (busctl, gdbus, dbus-send, systemctl, podman) with a bounded time. `missing`
 * tells "not installed" (try the next client) from "installed and it failed"; `detail` is
 * the first line of what it said. `timeoutMs` 0 waits as long as the tool runs (a start
 * job). `input`, when given, is written to its stdin.
 */
export function runTool(
  file: string,
  args: string[],
  env: Env,
  timeoutMs: number,
  input?: Uint8Array,
): Promise<ToolRun> {
  return new Promise((resolve) => {
    const child = execFile(
      file,
      args,
      { env: env as NodeJS.ProcessEnv, timeout: timeoutMs, encoding: "utf8" },
      (error, stdout, stderr) => {
        if (!error) return resolve({ ok: true, stdout });
        const missing = (error as NodeJS.ErrnoException).code === "ENOENT";
        const output = (stderr || error.message).trim();
        const detail = missing
          ? `${file} is not installed`
          : `${file} failed: ${output.split("\n")[0]}`;
        resolve({ ok: false, missing, detail, output });
      },
    );
    // A tool that exits before reading its input: its exit status says why, not EPIPE.
    child.stdin?.on("error", () => {});
    child.stdin?.end(input);
  });
}
