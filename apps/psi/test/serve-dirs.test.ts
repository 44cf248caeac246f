import { chmod, chown, mkdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { unixRequest } from "@psi/testkit/unix-http";
import { describe, expect, it } from "vitest";
import { LIVE_VALUE, useServeFixture } from "./serve-fixture.js";
import type { Serve } from "./serve-helpers.js";

// serve refuses directories another user could write, as OpenSSH's StrictModes does
// (issue 9: a world-writable socket directory let anyone take the socket over).
const fx = useServeFixture();
const isRoot = process.getuid?.() === 0;

async function refused(serve: Serve): Promise<string> {
  const { code } = await serve.exited;
  expect(code).toBe(1);
  return serve.stderr();
}

describe("serve's directories", () => {
  it("refuses a world-writable socket directory, naming the chmod that fixes it", async () => {
    const run = join(fx.dir, "run");
    await mkdir(run, { mode: 0o700 });
    await chmod(run, 0o777);
    const serve = fx.start();
    const stderr = await refused(serve);
    expect(stderr).toContain(
      `the socket directory ${run} is writable by group and others (mode 0777)`,
    );
    expect(stderr).toContain(`hint: chmod go-w ${run}`);
    expect(stderr).toContain("serve.allow_insecure_dirs: true");
    expect(stderr).not.toContain("Listening on");
    await expect(stat(serve.socket)).rejects.toThrow(/ENOENT/);
  });

  it("refuses a group-writable state_dir", async () => {
    await chmod(fx.stateDir, 0o770);
    const stderr = await refused(fx.start());
    expect(stderr).toContain(`the state_dir ${fx.stateDir} is writable by group (mode 0770)`);
  });

  it("refuses a writable directory above the socket directory (no sticky bit)", async () => {
    const open = join(fx.dir, "open");
    await mkdir(join(open, "run"), { recursive: true, mode: 0o700 });
    await chmod(open, 0o757);
    const stderr = await refused(fx.start({ socket: join(open, "run", "psi.sock") }));
    expect(stderr).toContain(
      `directory ${open} (above the socket directory ${join(open, "run")}) is writable by others`,
    );
  });

  it.skipIf(!isRoot)("refuses a state_dir owned by another user (chown)", async () => {
    await chown(fx.stateDir, 4321, 4321);
    const stderr = await refused(fx.start());
    expect(stderr).toContain(`the state_dir ${fx.stateDir} is owned by uid 4321, not by uid 0`);
    expect(stderr).toContain(`hint: chown 0 ${fx.stateDir} && chmod go-w ${fx.stateDir}`);
  });

  it("serve.allow_insecure_dirs: true accepts them", async () => {
    const run = join(fx.dir, "run");
    await mkdir(run, { mode: 0o700 });
    await chmod(run, 0o777);
    await fx.writeConfig(["serve:", "  allow_insecure_dirs: true"]);
    const serve = fx.start();
    await serve.waitFor((r) => r.event === "listen", "Listening on");
    const hit = await unixRequest(serve.socket, { path: "/lookup/id1" });
    expect(hit.text).toBe(LIVE_VALUE);
    serve.child.kill("SIGTERM");
    expect((await serve.exited).code).toBe(0);
  });

  it("creates a missing socket directory and state_dir 0700", async () => {
    const parent = join(fx.dir, "fresh");
    fx.stateDir = join(parent, "state");
    await fx.writeConfig();
    const serve = fx.start({ socket: join(parent, "run", "psi.sock") });
    await serve.waitFor((r) => r.event === "listen", "Listening on");
    expect((await stat(join(parent, "run"))).mode & 0o7777).toBe(0o700);
    expect((await stat(fx.stateDir)).mode & 0o7777).toBe(0o700);
    serve.child.kill("SIGTERM");
    expect((await serve.exited).code).toBe(0);
  });
});
