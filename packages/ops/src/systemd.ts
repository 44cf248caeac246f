import { execFile } from "node:child_process";
import type { Env, Scope } from "@psi/core";

/** What `systemctl show` says about a timer (the properties psi reports). */
export type TimerState = Record<string, string>;

/**
 * `LoadState`, `ActiveState`, `LastTriggerUSec` and `NextElapseUSecRealtime` of a timer, as
 * `systemctl show` reports them; undefined when systemd does not answer or the timer is not
 * loaded (a container, a host without the unit).
 */
export async function timerState(options: {
  scope: Scope;
  timer: string;
  env: Env;
}): Promise<TimerState | undefined> {
  const argv = [
    ...(options.scope === "user" ? ["--user"] : []),
    "show",
    options.timer,
    "--property=LoadState,ActiveState,LastTriggerUSec,NextElapseUSecRealtime",
  ];
  const text = await new Promise<string | undefined>((resolve) => {
    execFile("systemctl", argv, { env: { ...options.env }, timeout: 5000 }, (error, stdout) =>
      resolve(error ? undefined : stdout),
    );
  });
  if (text === undefined) return undefined;
  const properties = Object.fromEntries(
    text
      .split("\n")
      .filter((line) => line.includes("="))
      .map((line) => [line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1)]),
  );
  return properties["LoadState"] === "loaded" ? properties : undefined;
}
