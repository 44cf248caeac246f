// daemonReload against a real systemd user manager on a private bus: a unit file changed
// on disk is what the manager reports only after the reload went through.
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { daemonReload } from "@psi/setup";
import {
  startUserManager,
  USER_MANAGER_PACKAGES,
  type UserManager,
  userManagerAvailable,
} from "@psi/testkit/systemd";
import { requireTool, tempDir } from "@psi/testkit/tmp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const skip = requireTool(userManagerAvailable(), "systemd --user", USER_MANAGER_PACKAGES);

describe.skipIf(skip)("daemonReload on a real systemd user manager", () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  let manager: UserManager;
  const unitFile = () => join(manager.unitDir, "demo.service");
  const describeAs = (text: string) =>
    writeFile(
      unitFile(),
      `[Unit]\nDescription=${text}\n[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/true\n`,
    );

  beforeAll(async () => {
    dir = await tempDir("psi-reload-");
    manager = await startUserManager(dir.path);
    await describeAs("before");
    await manager.systemctl("daemon-reload");
    // Started (and so kept loaded), the unit shows what the manager loaded, not the file.
    await manager.systemctl("start", "demo.service");
  }, 60_000);
  afterAll(async () => {
    await manager?.stop();
    await dir?.cleanup();
  });

  it("reloads through D-Bus (busctl): the manager sees the changed unit", async () => {
    await describeAs("after busctl");
    expect(await manager.property("demo.service", "Description")).toBe("before");
    const outcome = await daemonReload({ scope: "user", env: manager.env });
    expect(outcome).toEqual({ status: "reloaded", via: "busctl" });
    expect(await manager.property("demo.service", "Description")).toBe("after busctl");
  });

  it("falls back to systemctl --user when the bus cannot be reached", async () => {
    await describeAs("after systemctl");
    expect(await manager.property("demo.service", "Description")).toBe("after busctl");
    const env = { ...manager.env, DBUS_SESSION_BUS_ADDRESS: `unix:path=${dir.path}/nobus` };
    const outcome = await daemonReload({ scope: "user", env });
    // busctl was there and the bus refused: the next D-Bus clients are not tried.
    expect(outcome).toEqual({ status: "reloaded", via: "systemctl" });
    expect(await manager.property("demo.service", "Description")).toBe("after systemctl");
  });
});
