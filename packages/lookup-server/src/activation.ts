import type { Env } from "@psi/core";

/** The first descriptor systemd passes (SD_LISTEN_FDS_START). */
export const SD_LISTEN_FDS_START = 3;

/**
 * The listening socket systemd passed by socket activation (`LISTEN_FDS`/`LISTEN_PID`,
 * sd_listen_fds(3)), or undefined when this process was not activated. `pid` is this
 * process's id: the variables are for it only, never for a child that inherited them.
 */
export function socketActivation(env: Env, pid: number): { fd: number } | undefined {
  if (env["LISTEN_PID"] !== String(pid)) return undefined;
  const count = Number.parseInt(env["LISTEN_FDS"] ?? "", 10);
  if (!Number.isInteger(count) || count < 1) return undefined;
  return { fd: SD_LISTEN_FDS_START };
}
