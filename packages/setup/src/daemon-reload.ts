import type { Env, Scope } from "@psi/core";
import { runTool } from "./run-tool.js";

/** How a daemon-reload went: done (and by which tool), or not possible here (a warning). */
export type DaemonReloadOutcome =
  | { status: "reloaded"; via: "busctl" | "gdbus" | "dbus-send" | "systemctl" }
  | { status: "skipped"; reason: string }
  | { status: "unavailable"; detail: string };

/** Options of {@link daemonReload}. */
export interface DaemonReloadOptions {
  /** `user` talks to the user manager (session bus, `systemctl --user`). */
  scope: Scope;
  /** Environment for the child processes (PATH, DBUS_SESSION_BUS_ADDRESS, XDG_RUNTIME_DIR). */
  env: Env;
  /** Per-command timeout, milliseconds (default 60 000: a reload of a big system takes a while). */
  timeoutMs?: number;
}

interface Attempt {
  via: "busctl" | "gdbus" | "dbus-send" | "systemctl";
  file: string;
  args: string[];
}

const DEST = "org.freedesktop.systemd1";
const OBJECT = "/org/freedesktop/systemd1";
const MANAGER = "org.freedesktop.systemd1.Manager";

/** The D-Bus clients that can call Manager.Reload, in order of preference. */
function dbusAttempts(scope: Scope): Attempt[] {
  const user = scope === "user";
  return [
    {
      via: "busctl",
      file: "busctl",
      args: [...(user ? ["--user"] : []), "call", DEST, OBJECT, MANAGER, "Reload"],
    },
    {
      via: "gdbus",
      file: "gdbus",
      args: [
        "call",
        user ? "--session" : "--system",
        "--dest",
        DEST,
        "--object-path",
        OBJECT,
        "--method",
        `${MANAGER}.Reload`,
      ],
    },
    {
      via: "dbus-send",
      file: "dbus-send",
      args: [
        user ? "--session" : "--system",
        "--print-reply",
        `--dest=${DEST}`,
        OBJECT,
        `${MANAGER}.Reload`,
      ],
    },
  ];
}

/**
 * Asks systemd to reload its units (SPEC §9) so quadlet picks up new drop-ins: D-Bus
 * `org.freedesktop.systemd1.Manager.Reload` through the first D-Bus client installed
 * (busctl, gdbus, dbus-send), then `systemctl [--user] daemon-reload`. Never throws:
 * when neither works (no systemd, e.g. in a container without the bus) the outcome says why.
 */
export async function daemonReload(options: DaemonReloadOptions): Promise<DaemonReloadOutcome> {
  const timeoutMs = options.timeoutMs ?? 60_000;
  const details: string[] = [];
  for (const attempt of dbusAttempts(options.scope)) {
    const result = await runTool(attempt.file, attempt.args, options.env, timeoutMs);
    if (result.ok) return { status: "reloaded", via: attempt.via };
    if (!result.missing) {
      // A client was there and the bus refused: another client would fare no better.
      details.push(result.detail);
      break;
    }
  }
  if (details.length === 0) details.push("no D-Bus client (busctl, gdbus, dbus-send) is installed");
  const systemctl: Attempt = {
    via: "systemctl",
    file: "systemctl",
    args: [...(options.scope === "user" ? ["--user"] : []), "daemon-reload"],
  };
  const result = await runTool(systemctl.file, systemctl.args, options.env, timeoutMs);
  if (result.ok) return { status: "reloaded", via: "systemctl" };
  details.push(result.detail);
  return { status: "unavailable", detail: details.join("; ") };
}
