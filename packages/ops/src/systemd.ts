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
  const { runTool } = await import("@psi/setup");
  const run = await runTool("systemctl", argv, options.env, 5000);
  if (!run.ok) return undefined;
  const properties = Object.fromEntries(
    run.stdout
      .split("\n")
      .filter((line) => line.includes("="))
      .map((line) => [line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1)]),
  );
  return properties["LoadState"] === "loaded" ? properties : undefined;
}

/** A timer's schedule as a person reads it: its state, when it last fired, when it fires next. */
export interface TimerSchedule {
  /** `ActiveState` (`active`, `inactive`, ...), `unknown` when systemd did not say. */
  active: string;
  /** `LastTriggerUSec`; absent when the timer never fired (systemd says `n/a`). */
  lastTrigger?: string;
  /** `NextElapseUSecRealtime`; absent when nothing is scheduled. */
  nextElapse?: string;
}

/** The schedule of a {@link timerState}, with systemd's empty and `n/a` values dropped. */
export function timerSchedule(state: TimerState): TimerSchedule {
  const last = state["LastTriggerUSec"];
  const next = state["NextElapseUSecRealtime"];
  return {
    active: state["ActiveState"] ?? "unknown",
    ...(last && last !== "n/a" ? { lastTrigger: last } : {}),
    ...(next ? { nextElapse: next } : {}),
  };
}

/** How one request to systemd went; never a thrown error. */
export interface SystemdRequest {
  ok: boolean;
  /** Neither systemctl nor (for the D-Bus fallback) dbus-send is installed. */
  missing: boolean;
  /** What the tool said when it failed. */
  detail: string;
}

const DBUS_MANAGER = [
  "--print-reply",
  "--dest=org.freedesktop.systemd1",
  "/org/freedesktop/systemd1",
] as const;

/** The Manager calls that do what `systemctl VERB UNITS` does, for the D-Bus fallback. */
function managerCalls(args: readonly string[]): Array<[method: string, args: string[]]> {
  const [verb, ...rest] = args;
  const units = rest.filter((arg) => !arg.startsWith("--"));
  if (verb === "daemon-reload") return [["Reload", []]];
  return [
    ...(verb === "enable"
      ? ([
          [
            "EnableUnitFiles",
            [`array:string:${units.join(",")}`, "boolean:false", "boolean:false"],
          ],
          ["Reload", []],
        ] as Array<[string, string[]]>)
      : []),
    ...units.map((unit): [string, string[]] => ["StartUnit", [`string:${unit}`, "string:replace"]]),
  ];
}

/**
 * `systemctl [--user] daemon-reload | enable --now U... | start U...`; where there is no
 * systemctl (the PSI image), the same through D-Bus with dbus-send over the bus socket
 * the container mounts: Reload, EnableUnitFiles + Reload + StartUnit, StartUnit. Waits
 * for start jobs as systemctl does (no timeout).
 */
export async function requestSystemd(options: {
  scope: Scope;
  env: Env;
  args: readonly string[];
}): Promise<SystemdRequest> {
  const { runTool } = await import("@psi/setup");
  const user = options.scope === "user";
  const viaSystemctl = await runTool(
    "systemctl",
    [...(user ? ["--user"] : []), ...options.args],
    options.env,
    0,
  );
  if (viaSystemctl.ok) return { ok: true, missing: false, detail: "" };
  if (!viaSystemctl.missing) return { ok: false, missing: false, detail: viaSystemctl.output };
  for (const [method, args] of managerCalls(options.args)) {
    const result = await runTool(
      "dbus-send",
      [
        user ? "--session" : "--system",
        ...DBUS_MANAGER,
        `org.freedesktop.systemd1.Manager.${method}`,
        ...args,
      ],
      options.env,
      0,
    );
    if (result.ok) continue;
    if (result.missing) {
      return { ok: false, missing: true, detail: "neither systemctl nor dbus-send is installed" };
    }
    return { ok: false, missing: false, detail: result.output };
  }
  return { ok: true, missing: false, detail: "" };
}
