// timerState (what `psi infisical tls status --timer` shows first) against a real systemd
// user manager on a private bus (@psi/testkit/systemd).
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { timerSchedule, timerState } from "@psi/ops";
import {
  startUserManager,
  USER_MANAGER_PACKAGES,
  type UserManager,
  userManagerAvailable,
} from "@psi/testkit/systemd";
import { requireTool, tempDir } from "@psi/testkit/tmp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const skip = requireTool(userManagerAvailable(), "systemd --user", USER_MANAGER_PACKAGES);

describe.skipIf(skip)("timerState on a real systemd user manager", () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  let manager: UserManager;

  beforeAll(async () => {
    dir = await tempDir("psi-timer-");
    manager = await startUserManager(dir.path);
    await writeFile(
      join(manager.unitDir, "psi-tls-renew.service"),
      "[Service]\nType=oneshot\nExecStart=/bin/true\n",
    );
    await writeFile(
      join(manager.unitDir, "psi-tls-renew.timer"),
      "[Timer]\nOnCalendar=daily\nRandomizedDelaySec=1h\nPersistent=true\n",
    );
    await writeFile(
      join(manager.unitDir, "idle.timer"),
      "[Timer]\nOnCalendar=daily\nUnit=psi-tls-renew.service\n",
    );
    await manager.systemctl("daemon-reload");
    await manager.systemctl("start", "psi-tls-renew.timer");
  }, 60_000);
  afterAll(async () => {
    await manager?.stop();
    await dir?.cleanup();
  });

  it("reads a running timer's state and its next run", async () => {
    const state = await timerState({
      scope: "user",
      timer: "psi-tls-renew.timer",
      env: manager.env,
    });
    expect(state).toMatchObject({ LoadState: "loaded", ActiveState: "active" });
    expect(state?.["NextElapseUSecRealtime"]).toMatch(/\d{4}-\d\d-\d\d|\w{3} \d{4}/);
    // Started but never fired: no last trigger (systemd 252 says "", later ones "n/a").
    const schedule = timerSchedule(state!);
    expect(schedule).toEqual({ active: "active", nextElapse: state?.["NextElapseUSecRealtime"] });
    expect(timerSchedule({ ...state, LastTriggerUSec: "n/a" })).toEqual(schedule);
    const fired = "Sun 2026-11-29 03:00:00 UTC";
    expect(timerSchedule({ ...state, LastTriggerUSec: fired }).lastTrigger).toBe(fired);
  });

  it("tells a loaded but stopped timer from a running one", async () => {
    const state = await timerState({ scope: "user", timer: "idle.timer", env: manager.env });
    expect(state).toMatchObject({ LoadState: "loaded", ActiveState: "inactive" });
    expect(timerSchedule(state!)).toEqual({ active: "inactive" });
  });

  it("is undefined for a timer systemd does not know, or a manager it cannot reach", async () => {
    expect(
      await timerState({ scope: "user", timer: "nope.timer", env: manager.env }),
    ).toBeUndefined();
    const unreachable = {
      PATH: manager.env.PATH,
      XDG_RUNTIME_DIR: join(dir.path, "elsewhere"),
      DBUS_SESSION_BUS_ADDRESS: `unix:path=${join(dir.path, "nobus")}`,
    };
    expect(
      await timerState({ scope: "user", timer: "psi-tls-renew.timer", env: unreachable }),
    ).toBeUndefined();
  });
});
