import { setTimeout as sleep } from "node:timers/promises";
import type { Env, Scope } from "@psi/core";
import { runTool } from "./run-tool.js";

/** What happened to one unit that setup asked systemd to restart. */
export interface RestartResult {
  /** The unit, e.g. `myapp.service` or a template instance `worker@2.service`. */
  unit: string;
  /**
   * `restarted`: the restart job finished and the unit is active again; `not-running`:
   * nothing to restart (try-restart leaves stopped units alone); `failed`: see `detail`;
   * `skipped`: a template instance left alone because an earlier one did not come back.
   */
  status: "restarted" | "not-running" | "failed" | "skipped";
  /** How systemd was reached. */
  via?: "busctl" | "systemctl";
  detail?: string;
}

/** Options of {@link restartUnit}. */
export interface RestartOptions {
  /** `user` talks to the user manager (`busctl --user`, `systemctl --user`). */
  scope: Scope;
  /** Environment of the child processes (PATH, DBUS_SESSION_BUS_ADDRESS, XDG_RUNTIME_DIR). */
  env: Env;
  /** How long one instance may take to be active again before setup gives up on it (default 90 s). */
  activeTimeoutMs?: number;
  /** Per-command timeout (default 30 s). */
  commandTimeoutMs?: number;
}

const DEST = "org.freedesktop.systemd1";
const OBJECT = "/org/freedesktop/systemd1";
const MANAGER = "org.freedesktop.systemd1.Manager";
const RUNNING_STATES = ["active", "activating", "reloading"];

/**
 * A unit name is a template when its instance part is empty (`worker@.service`): then
 * every running instance is restarted, one after the other.
 */
export function isTemplateUnit(unit: string): boolean {
  return /@\.[a-z]+$/.test(unit);
}

/**
 * The unit setup restarts for a workload: `restart_unit` when set, else the service quadlet
 * generates from `unit` (`myapp.container` → `myapp.service`), else `<name>.service`.
 */
export function restartUnitOf(
  name: string,
  workload: { unit?: string | null | undefined; restart_unit?: string | null | undefined },
): string {
  if (workload.restart_unit) return workload.restart_unit;
  const unit = workload.unit ?? `${name}.container`;
  const base = unit.replace(/\.(container|kube|pod|network|volume|image|build|service)$/, "");
  return `${base}.service`;
}

/** The two ways to reach the manager: D-Bus through busctl, then systemctl. */
interface Manager {
  via: "busctl" | "systemctl";
  /** Loaded units matching the pattern in a running state. */
  running(pattern: string): Promise<string[]>;
  /** Restarts the unit if it runs and waits for the job to finish. */
  tryRestart(unit: string, deadline: number): Promise<void>;
  /** The unit's ActiveState. */
  activeState(unit: string): Promise<string>;
}

function busctlManager(options: RestartOptions, timeoutMs: number): Manager {
  const user = options.scope === "user" ? ["--user"] : [];
  const busctl = async (args: string[]): Promise<unknown> => {
    const result = await runTool(
      "busctl",
      [...user, "--json=short", ...args],
      options.env,
      timeoutMs,
    );
    if (!result.ok) throw new Error(result.detail);
    return result.stdout.trim() === "" ? undefined : JSON.parse(result.stdout);
  };
  const units = async (states: string[], pattern: string) => {
    const answer = (await busctl([
      "call",
      DEST,
      OBJECT,
      MANAGER,
      "ListUnitsByPatterns",
      "asas",
      String(states.length),
      ...states,
      "1",
      pattern,
    ])) as { data: [Array<[string, string, string, string]>] };
    return answer.data[0].map((row) => ({ name: row[0], active: row[3] }));
  };
  return {
    via: "busctl",
    async running(pattern) {
      return (await units(RUNNING_STATES, pattern)).map((unit) => unit.name).sort(byInstance);
    },
    async tryRestart(unit, deadline) {
      const answer = (await busctl([
        "call",
        DEST,
        OBJECT,
        MANAGER,
        "TryRestartUnit",
        "ss",
        unit,
        "replace",
      ])) as { data: [string] };
      const job = answer.data[0];
      // The job object exists until the restart is done (for Type=notify: until READY=1).
      while (Date.now() < deadline) {
        const state = await runTool(
          "busctl",
          [...user, "get-property", DEST, job, "org.freedesktop.systemd1.Job", "State"],
          options.env,
          timeoutMs,
        );
        if (!state.ok) return;
        await sleep(100);
      }
      throw new Error(`the restart job of ${unit} did not finish in time`);
    },
    async activeState(unit) {
      return (await units([], unit))[0]?.active ?? "inactive";
    },
  };
}

function systemctlManager(options: RestartOptions, timeoutMs: number): Manager {
  const user = options.scope === "user" ? ["--user"] : [];
  const systemctl = async (args: string[], runTimeout = timeoutMs): Promise<string> => {
    const result = await runTool("systemctl", [...user, ...args], options.env, runTimeout);
    if (!result.ok) throw new Error(result.detail);
    return result.stdout;
  };
  return {
    via: "systemctl",
    async running(pattern) {
      const out = await systemctl([
        "list-units",
        `--state=${RUNNING_STATES.join(",")}`,
        "--plain",
        "--no-legend",
        "--full",
        pattern,
      ]);
      return out
        .split("\n")
        .map((line) => line.trim().split(/\s+/)[0] ?? "")
        .filter(Boolean)
        .sort(byInstance);
    },
    async tryRestart(unit, deadline) {
      // systemctl waits for the job itself.
      await systemctl(["try-restart", unit], Math.max(1, deadline - Date.now()));
    },
    async activeState(unit) {
      const result = await runTool(
        "systemctl",
        [...user, "is-active", unit],
        options.env,
        timeoutMs,
      );
      return result.ok ? result.stdout.trim() : "inactive";
    },
  };
}

/** worker@2 before worker@10. */
function byInstance(a: string, b: string): number {
  return a.localeCompare(b, "en", { numeric: true });
}

/** Restarts and waits until the unit is active again (bounded). */
async function restartOne(
  manager: Manager,
  unit: string,
  timeoutMs: number,
): Promise<RestartResult> {
  const deadline = Date.now() + timeoutMs;
  try {
    await manager.tryRestart(unit, deadline);
    for (;;) {
      const state = await manager.activeState(unit);
      if (state === "active") return { unit, status: "restarted", via: manager.via };
      if (state === "failed" || state === "inactive" || Date.now() >= deadline) {
        return {
          unit,
          status: "failed",
          via: manager.via,
          detail: `${unit} is ${state} after the restart`,
        };
      }
      await sleep(100);
    }
  } catch (error) {
    return { unit, status: "failed", via: manager.via, detail: (error as Error).message };
  }
}

/**
 * Restarts `unit` if it runs (systemd's try-restart), through D-Bus
 * (`Manager.TryRestartUnit` via busctl) or else `systemctl try-restart`. A template
 * (`worker@.service`) restarts its running instances one at a time, each only after the
 * previous one is active again, so a pool never goes down all at once. Never throws: a
 * manager that cannot be reached is one `failed` result saying why.
 */
export async function restartUnit(unit: string, options: RestartOptions): Promise<RestartResult[]> {
  const commandTimeout = options.commandTimeoutMs ?? 30_000;
  const activeTimeout = options.activeTimeoutMs ?? 90_000;
  const pattern = isTemplateUnit(unit) ? unit.replace("@.", "@*.") : unit;
  const details: string[] = [];
  for (const manager of [
    busctlManager(options, commandTimeout),
    systemctlManager(options, commandTimeout),
  ]) {
    let running: string[];
    try {
      running = await manager.running(pattern);
    } catch (error) {
      details.push((error as Error).message);
      // busctl missing or the bus unreachable: systemctl may still reach the manager.
      continue;
    }
    if (running.length === 0) return [{ unit, status: "not-running", via: manager.via }];
    const results: RestartResult[] = [];
    for (const instance of running) {
      const failed = results.find((result) => result.status === "failed");
      if (failed) {
        // One instance that did not come back stops the roll-out: the rest keep running.
        results.push({
          unit: instance,
          status: "skipped",
          via: manager.via,
          detail: `not restarted: ${failed.unit} did not come back`,
        });
        continue;
      }
      results.push(await restartOne(manager, instance, activeTimeout));
    }
    return results;
  }
  return [{ unit, status: "failed", detail: details.join("; ") }];
}
