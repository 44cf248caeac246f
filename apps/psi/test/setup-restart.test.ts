// `on_change: restart` end to end: values rotated in the fake Infisical, `psi setup` (real
// Infisical provider, real Podman, running psi serve) and a real systemd user manager
// whose units log their stops and starts. The log says which units restarted and in
// which order; no timing is assumed.
import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { WorkloadOutcome } from "@psi/setup";
import { curlAvailable, podmanAvailable } from "@psi/testkit/podman";
import {
  startUserManager,
  USER_MANAGER_PACKAGES,
  type UserManager,
  userManagerAvailable,
} from "@psi/testkit/systemd";
import { requireTool } from "@psi/testkit/tmp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PROJECT, type SetupHost, startSetupHost, type WorkloadSpec } from "./setup-host.js";

const skip =
  requireTool(podmanAvailable(), "podman", "podman") ||
  requireTool(curlAvailable(), "curl", "curl") ||
  requireTool(userManagerAvailable(), "systemd --user", USER_MANAGER_PACKAGES);

const source = (path: string, project = PROJECT.name) => ({ project, path });

const WORKLOADS: Record<string, WorkloadSpec> = {
  app: { unit: "app.container", on_change: "restart", secrets: [source("/app")] },
  steady: { on_change: "restart", secrets: [source("/steady")] },
  quiet: { secrets: [source("/quiet")] },
  pool: { on_change: "restart", restart_unit: "worker@.service", secrets: [source("/pool")] },
  locked: { on_change: "restart", secrets: [source("/locked", "denied")] },
};

describe.skipIf(skip)("psi setup restarts the workloads whose values changed", () => {
  let host: SetupHost;
  let manager: UserManager;
  let events: string;

  const rotate = (path: string, key: string, value: string) =>
    host.fake.setSecret({
      projectId: PROJECT.id,
      environment: PROJECT.environment,
      path,
      key,
      value,
    });
  const log = async () =>
    (await readFile(events, "utf8").catch(() => "")).trim().split("\n").filter(Boolean);
  const byName = (workloads: WorkloadOutcome[]) =>
    Object.fromEntries(workloads.map((workload) => [workload.name, workload]));

  beforeAll(async () => {
    host = await startSetupHost({
      "/app": { A1: "a1-v1", A2: "a2-v1" },
      "/steady": { S1: "s1-v1" },
      "/quiet": { Q1: "q1-v1" },
      "/pool": { P1: "p1-v1" },
      "/locked": { L1: "l1-v1" },
    });
    await host.writeConfig("main", WORKLOADS, {
      projects: {
        [PROJECT.name]: { id: PROJECT.id, environment: PROJECT.environment },
        // The same project through credentials Infisical refuses: its workload never fetches.
        denied: {
          id: PROJECT.id,
          environment: PROJECT.environment,
          auth: { method: "universal-auth", client_id: "nobody", client_secret: "wrong-secret" },
        },
      },
    });
    await host.startServe();
    manager = await startUserManager(join(host.dir, "systemd-user"));
    Object.assign(host.env, {
      PATH: manager.env.PATH,
      DBUS_SESSION_BUS_ADDRESS: manager.env.DBUS_SESSION_BUS_ADDRESS,
      XDG_RUNTIME_DIR: manager.env.XDG_RUNTIME_DIR,
    });
    events = join(host.dir, "events.log");
    const flag = join(host.dir, "steady-broken");
    const unit = (name: string, extra: string[] = []) =>
      writeFile(
        join(manager.unitDir, name),
        [
          "[Service]",
          `ExecStartPre=/bin/sh -c 'echo start %n >> ${events}'`,
          ...extra,
          "ExecStart=/bin/sleep 1000",
          `ExecStopPost=/bin/sh -c 'echo stop %n >> ${events}'`,
          "",
        ].join("\n"),
      );
    await unit("app.service");
    await unit("steady.service", [`ExecStartPre=/bin/sh -c '! test -e ${flag}'`]);
    await unit("quiet.service");
    await unit("locked.service");
    await unit("worker@.service", ["ExecStartPre=/bin/sleep 0.2"]);
    await manager.systemctl("daemon-reload");
    await manager.systemctl(
      "start",
      "app.service",
      "steady.service",
      "quiet.service",
      "locked.service",
      "worker@1.service",
      "worker@2.service",
    );
    await rm(events, { force: true });
  }, 120_000);

  afterAll(async () => {
    await manager?.stop();
    await host?.stop();
  });

  it("without a previous cache.enc, says it cannot tell and restarts nothing", async () => {
    const run = await host.setup();
    const workloads = byName(run.result.workloads);
    expect(workloads["app"]?.changes).toEqual({
      known: false,
      reason: "there is no previous cache.enc to compare with",
    });
    expect(workloads["app"]?.restartUnit).toBe("app.service");
    expect(workloads["app"]?.restarts).toBeUndefined();
    expect(workloads["locked"]?.status).toBe("failed");
    expect(run.result.cache.status).toBe("written");
    expect(await log()).toEqual([]);
  });

  it("restarts only the restart workloads whose values changed, template instances one by one", async () => {
    rotate("/app", "A1", "a1-v2");
    rotate("/quiet", "Q1", "q1-v2");
    rotate("/pool", "P1", "p1-v2");
    rotate("/locked", "L1", "l1-v2");
    const run = await host.setup();
    expect(run.code).toBe(1); // the locked workload failed to fetch
    const workloads = byName(run.result.workloads);

    expect(workloads["app"]?.changes).toEqual({ known: true, changed: ["A1"], added: [] });
    expect(workloads["app"]?.restarts).toEqual([
      { unit: "app.service", status: "restarted", via: "busctl" },
    ]);
    expect(workloads["steady"]?.changes).toEqual({ known: true, changed: [], added: [] });
    expect(workloads["steady"]?.restarts).toBeUndefined();
    // on_change defaults to none: the change is reported, nothing restarts.
    expect(workloads["quiet"]?.changes).toEqual({ known: true, changed: ["Q1"], added: [] });
    expect(workloads["quiet"]?.restartUnit).toBeUndefined();
    expect(workloads["quiet"]?.restarts).toBeUndefined();
    expect(workloads["pool"]?.restarts?.map((restart) => [restart.unit, restart.status])).toEqual([
      ["worker@1.service", "restarted"],
      ["worker@2.service", "restarted"],
    ]);
    expect(workloads["locked"]?.status).toBe("failed");
    expect(workloads["locked"]?.restarts).toBeUndefined();

    expect(await log()).toEqual([
      "stop app.service",
      "start app.service",
      "stop worker@1.service",
      "start worker@1.service",
      "stop worker@2.service",
      "start worker@2.service",
    ]);
    // setup saw serve load the new file before restarting (it did not time out waiting).
    expect(run.stderr).not.toMatch(/has not loaded the new cache\.enc/);
    // Key names only: no value reaches the report or the log.
    for (const value of ["a1-v1", "a1-v2", "q1-v2", "p1-v2"]) {
      expect(run.stdout).not.toContain(value);
      expect(run.stderr).not.toContain(value);
    }
  });

  it("the human summary lists changed keys and each restart", async () => {
    await rm(events, { force: true });
    rotate("/app", "A2", "a2-v2");
    const run = await host.psi(
      ["setup", "--podman-socket", host.sandbox.socketPath],
      undefined,
      true,
    );
    expect(run.stdout).toMatch(
      /^app\s+ok .*\n {4}changed: A2\n {4}restart app\.service: restarted$/m,
    );
    expect(run.stdout).not.toMatch(/quiet[^\n]*\n {4}changed/);
    expect(await log()).toEqual(["stop app.service", "start app.service"]);
  });

  it("a failed restart is a warning and a non-zero exit, and the cache write stands", async () => {
    await writeFile(join(host.dir, "steady-broken"), "");
    rotate("/steady", "S1", "s1-v2");
    const run = await host.setup();
    expect(run.code).toBe(1);
    const steady = byName(run.result.workloads)["steady"];
    expect(steady?.restarts).toHaveLength(1);
    expect(steady?.restarts?.[0]).toMatchObject({ unit: "steady.service", status: "failed" });
    expect(run.result.cache.status).toBe("written");
    expect(
      await host.cacheValue({
        provider: "infisical",
        project: PROJECT.name,
        path: "/steady",
        key: "S1",
      }),
    ).toBe("s1-v2");
    expect(run.stderr).toMatch(/steady\.service could not be restarted/);
  });
});
