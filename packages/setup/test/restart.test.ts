// restartUnit against a real systemd user manager (systemd --user on a private bus, in a
// private mount namespace: see @psi/testkit/systemd). Units log their stops and starts to
// a file, so the order of events is read from the log, never inferred from timing.
import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { isTemplateUnit, restartUnit, restartUnitOf } from "@psi/setup";
import {
  startUserManager,
  USER_MANAGER_PACKAGES,
  type UserManager,
  userManagerAvailable,
} from "@psi/testkit/systemd";
import { requireTool, tempDir } from "@psi/testkit/tmp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const skip = requireTool(userManagerAvailable(), "systemd --user", USER_MANAGER_PACKAGES);

describe.skipIf(skip)("restartUnit on a real systemd user manager", () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  let manager: UserManager;
  let events: string;
  const options = () => ({ scope: "user" as const, env: manager.env, activeTimeoutMs: 15_000 });

  const unit = (name: string, lines: string[]) =>
    writeFile(join(manager.unitDir, name), `${lines.join("\n")}\n`);

  beforeAll(async () => {
    dir = await tempDir("psi-restart-");
    manager = await startUserManager(dir.path);
    events = join(dir.path, "events.log");
    const log = (what: string) => `/bin/sh -c 'echo ${what} %n >> ${events}'`;
    await unit("app.service", [
      "[Service]",
      `ExecStartPre=${log("start")}`,
      "ExecStart=/bin/sleep 1000",
      `ExecStopPost=${log("stop")}`,
    ]);
    // Slow to become active (ExecStartPre), so parallel restarts would interleave in the log.
    await unit("worker@.service", [
      "[Service]",
      `ExecStartPre=${log("start")}`,
      "ExecStartPre=/bin/sleep 0.3",
      "ExecStart=/bin/sleep 1000",
      `ExecStopPost=${log("stop")}`,
    ]);
    // Fails to start again once the flag file exists.
    const flag = join(dir.path, "broken");
    await unit("fragile@.service", [
      "[Service]",
      `ExecStartPre=/bin/sh -c '! test -e ${flag}'`,
      "ExecStart=/bin/sleep 1000",
    ]);
    await unit("idle.service", ["[Service]", "ExecStart=/bin/sleep 1000"]);
    await manager.systemctl("daemon-reload");
    await manager.systemctl(
      "start",
      "app.service",
      "worker@1.service",
      "worker@2.service",
      "worker@10.service",
      "fragile@a.service",
      "fragile@b.service",
    );
  }, 60_000);

  afterAll(async () => {
    await manager?.stop();
    await dir?.cleanup();
  });

  it("derives the unit from the workload", () => {
    expect(restartUnitOf("myapp", { unit: "myapp.container" })).toBe("myapp.service");
    expect(restartUnitOf("myapp", {})).toBe("myapp.service");
    expect(restartUnitOf("worker@", {})).toBe("worker@.service");
    expect(restartUnitOf("x", { unit: "x.container", restart_unit: "other.service" })).toBe(
      "other.service",
    );
    expect(isTemplateUnit("worker@.service")).toBe(true);
    expect(isTemplateUnit("worker@1.service")).toBe(false);
  });

  it("restarts a running unit: a new main process, active again", async () => {
    const before = await manager.property("app.service", "MainPID");
    await rm(events, { force: true });
    const results = await restartUnit("app.service", options());
    expect(results).toEqual([{ unit: "app.service", status: "restarted", via: "busctl" }]);
    expect(await manager.property("app.service", "MainPID")).not.toBe(before);
    expect(await manager.property("app.service", "ActiveState")).toBe("active");
    expect((await readFile(events, "utf8")).trim().split("\n")).toEqual([
      "stop app.service",
      "start app.service",
    ]);
  });

  it("leaves a unit that is not running alone", async () => {
    expect(await restartUnit("idle.service", options())).toEqual([
      { unit: "idle.service", status: "not-running", via: "busctl" },
    ]);
    expect(await manager.property("idle.service", "ActiveState")).toBe("inactive");
  });

  it("restarts a template's running instances one at a time", async () => {
    await rm(events, { force: true });
    const results = await restartUnit("worker@.service", options());
    expect(results.map((result) => [result.unit, result.status])).toEqual([
      ["worker@1.service", "restarted"],
      ["worker@2.service", "restarted"],
      ["worker@10.service", "restarted"],
    ]);
    // Each instance is back before the next one stops.
    expect((await readFile(events, "utf8")).trim().split("\n")).toEqual([
      "stop worker@1.service",
      "start worker@1.service",
      "stop worker@2.service",
      "start worker@2.service",
      "stop worker@10.service",
      "start worker@10.service",
    ]);
  });

  it("stops the roll-out at an instance that does not come back", async () => {
    await writeFile(join(dir.path, "broken"), "");
    const results = await restartUnit("fragile@.service", options());
    expect(results.map((result) => [result.unit, result.status])).toEqual([
      ["fragile@a.service", "failed"],
      ["fragile@b.service", "skipped"],
    ]);
    expect(results[0]?.detail).toMatch(/fragile@a\.service is (failed|inactive)/);
    expect(await manager.property("fragile@b.service", "ActiveState")).toBe("active");
  });

  it("falls back to systemctl when busctl cannot reach the bus", async () => {
    const env = { ...manager.env, DBUS_SESSION_BUS_ADDRESS: `unix:path=${dir.path}/nobus` };
    const before = await manager.property("app.service", "MainPID");
    const results = await restartUnit("app.service", { ...options(), env });
    expect(results).toEqual([{ unit: "app.service", status: "restarted", via: "systemctl" }]);
    expect(await manager.property("app.service", "MainPID")).not.toBe(before);
  });

  it("reports a manager it cannot reach as one failure, without throwing", async () => {
    const env = {
      PATH: manager.env.PATH,
      DBUS_SESSION_BUS_ADDRESS: `unix:path=${dir.path}/nobus`,
      XDG_RUNTIME_DIR: join(dir.path, "elsewhere"),
    };
    const results = await restartUnit("app.service", { ...options(), env });
    expect(results).toHaveLength(1);
    expect(results[0]).toMatchObject({ unit: "app.service", status: "failed" });
    expect(results[0]?.detail).toMatch(/busctl failed.*systemctl failed/);
  });
});
