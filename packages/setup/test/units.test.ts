import { accessSync, constants } from "node:fs";
import { chmod, mkdir, readFile, stat, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  createLimit,
  daemonReload,
  differingDriverOptions,
  keyProblem,
  ownerOf,
  parseDriverOptions,
  readDropInSecrets,
  writeDropIn,
} from "@psi/setup";
import {
  busEnv,
  commandOnPath,
  dbusDaemonAvailable,
  ownBusName,
  type PrivateBus,
  startPrivateBus,
} from "@psi/testkit/dbus";
import { requireTool, tempDir } from "@psi/testkit/tmp";
import { renderDriverConf } from "@psi/unitgen";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

describe("createLimit", () => {
  it("never runs more than `concurrency` tasks and starts them in call order", async () => {
    const limit = createLimit(3);
    let running = 0;
    let peak = 0;
    const started: number[] = [];
    // Each task waits for its own gate; the test opens a gate only once the limit is full,
    // so the overlap is certain rather than timed.
    const gates = Array.from({ length: 12 }, () => {
      let resolve!: () => void;
      const promise = new Promise<void>((done) => {
        resolve = done;
      });
      return { promise, resolve };
    });
    const all = Promise.all(
      Array.from({ length: 12 }, (_, index) =>
        limit(async () => {
          started.push(index);
          running++;
          peak = Math.max(peak, running);
          await gates[index]!.promise;
          running--;
        }),
      ),
    );
    for (let index = 0; index < 12; index++) {
      while (started.length < Math.min(12, index + 3)) await new Promise(setImmediate);
      gates[index]!.resolve();
    }
    await all;
    expect(peak).toBe(3);
    expect(started).toEqual([...Array(12).keys()]);
  });

  it("passes results and rejections through and frees the slot either way", async () => {
    const limit = createLimit(1);
    const failed = limit(() => Promise.reject(new Error("boom")));
    const thrown = limit(() => {
      throw new Error("sync");
    });
    await expect(failed).rejects.toThrow("boom");
    await expect(thrown).rejects.toThrow("sync");
    await expect(limit(async () => 42)).resolves.toBe(42);
  });
});

describe("names", () => {
  it("gives a secret name to the workload with the longest matching name", () => {
    const workloads = ["app", "app--x", "db"];
    expect(ownerOf("app--DB_HOST", workloads)).toEqual({ workload: "app", key: "DB_HOST" });
    expect(ownerOf("app--x--KEY", workloads)).toEqual({ workload: "app--x", key: "KEY" });
    expect(ownerOf("application--KEY", workloads)).toBeUndefined();
    expect(ownerOf("app--", workloads)).toBeUndefined();
  });

  it("refuses keys that would break a Secret= line or a Podman name", () => {
    expect(keyProblem("DB_HOST")).toBeUndefined();
    expect(keyProblem("db.host-2")).toBeUndefined();
    for (const bad of ["A,B", "A=B", "A B", "a/b", ""]) expect(keyProblem(bad)).toBeDefined();
  });
});

describe("driver options", () => {
  it("reads back exactly the commands psi install writes, token included", () => {
    const socket = "/run/psi/psi.sock";
    const options = parseDriverOptions(renderDriverConf({ socket, token: "tok.en-123=" }));
    expect(options).toEqual({
      store: `curl -sf -H 'Authorization: Bearer tok.en-123=' --unix-socket ${socket} -X POST -d @- http://localhost/store/$SECRET_ID`,
      lookup: `curl -sf -H 'Authorization: Bearer tok.en-123=' --unix-socket ${socket} http://localhost/lookup/$SECRET_ID`,
      delete: `curl -sf -H 'Authorization: Bearer tok.en-123=' --unix-socket ${socket} -X DELETE http://localhost/delete/$SECRET_ID`,
      list: `curl -sf -H 'Authorization: Bearer tok.en-123=' --unix-socket ${socket} http://localhost/list`,
    });
    const rotated = parseDriverOptions(renderDriverConf({ socket, token: "another-token" }));
    expect(differingDriverOptions(options, rotated)).toEqual(["delete", "list", "lookup", "store"]);
    expect(differingDriverOptions(options, { ...options })).toEqual([]);
  });

  it("ignores other sections and unescapes TOML basic strings", () => {
    const text =
      '[secrets]\ndriver = "shell"\n[secrets.opts]\nlookup = "a \\"b\\" \\u00e9" # note\n[engine]\nx = "y"\n';
    expect(parseDriverOptions(text)).toEqual({ lookup: 'a "b" é' });
  });
});

describe("drop-ins", () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  beforeAll(async () => {
    dir = await tempDir("psi-dropin-");
  });
  afterAll(async () => {
    await dir.cleanup();
  });

  it("writes a template's drop-in under name@.container.d, sorted, and leaves an identical file alone", async () => {
    const first = await writeDropIn({
      systemdDir: dir.path,
      workload: "worker@",
      keys: ["ZED", "ALPHA", "MODE"],
      dependsOn: ["db.service"],
    });
    expect(first).toEqual({
      path: join(dir.path, "worker@.container.d/50-secrets.conf"),
      written: true,
    });
    expect(await readFile(first.path, "utf8")).toBe(
      "[Unit]\nAfter=db.service\nWants=db.service\n\n[Container]\n" +
        "Secret=worker@--ALPHA,type=env,target=ALPHA\nSecret=worker@--MODE,type=env,target=MODE\n" +
        "Secret=worker@--ZED,type=env,target=ZED\n",
    );
    expect((await stat(first.path)).mode & 0o777).toBe(0o644);
    // An atomic rewrite would be a new inode, and ctime moves with any write in place: no
    // sleep is needed to tell "left alone" from "written again".
    const before = await stat(first.path, { bigint: true });
    const again = await writeDropIn({
      systemdDir: dir.path,
      workload: "worker@",
      keys: ["MODE", "ZED", "ALPHA"],
      dependsOn: ["db.service"],
    });
    expect(again.written).toBe(false);
    const after = await stat(first.path, { bigint: true });
    expect([after.ino, after.ctimeNs]).toEqual([before.ino, before.ctimeNs]);
    expect(await readDropInSecrets(first.path)).toEqual([
      "worker@--ALPHA",
      "worker@--MODE",
      "worker@--ZED",
    ]);
    expect(
      await readDropInSecrets(join(dir.path, "missing.container.d/50-secrets.conf")),
    ).toBeUndefined();
  });
});

describe("daemonReload", () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  beforeAll(async () => {
    dir = await tempDir("psi-reload-");
  });
  afterAll(async () => {
    await dir.cleanup();
  });

  async function tool(bin: string, name: string, script: string): Promise<void> {
    await mkdir(bin, { recursive: true });
    await writeFile(join(bin, name), `#!/bin/sh\n${script}\n`);
    await chmod(join(bin, name), 0o755);
  }

  it("is a warning, not a failure, when no tool exists", async () => {
    const outcome = await daemonReload({ scope: "system", env: { PATH: join(dir.path, "empty") } });
    expect(outcome.status).toBe("unavailable");
    expect(outcome.status === "unavailable" && outcome.detail).toContain(
      "systemctl is not installed",
    );
  });

  // systemd does not run here: stand-in executables record how they were called.
  it("calls Manager.Reload over D-Bus, falls back to systemctl --user when the bus refuses", async () => {
    const bin = join(dir.path, "bin1");
    const log = join(dir.path, "calls1.log");
    await tool(
      bin,
      "busctl",
      `echo "busctl $*" >> ${log}; echo "Failed to connect to bus" >&2; exit 1`,
    );
    await tool(bin, "systemctl", `echo "systemctl $*" >> ${log}`);
    const outcome = await daemonReload({ scope: "user", env: { PATH: bin } });
    expect(outcome).toEqual({ status: "reloaded", via: "systemctl" });
    expect((await readFile(log, "utf8")).trim().split("\n")).toEqual([
      "busctl --user call org.freedesktop.systemd1 /org/freedesktop/systemd1 org.freedesktop.systemd1.Manager Reload",
      "systemctl --user daemon-reload",
    ]);
  });

  it("uses the first installed D-Bus client", async () => {
    const bin = join(dir.path, "bin2");
    const log = join(dir.path, "calls2.log");
    await tool(bin, "dbus-send", `echo "dbus-send $*" >> ${log}`);
    const outcome = await daemonReload({ scope: "system", env: { PATH: bin } });
    expect(outcome).toEqual({ status: "reloaded", via: "dbus-send" });
    expect(await readFile(log, "utf8")).toBe(
      "dbus-send --system --print-reply --dest=org.freedesktop.systemd1 /org/freedesktop/systemd1 org.freedesktop.systemd1.Manager.Reload\n",
    );
  });
});

const noBus =
  requireTool(dbusDaemonAvailable(), "dbus-daemon", "dbus") ||
  requireTool(commandOnPath("busctl"), "busctl", "systemd") ||
  requireTool(commandOnPath("gdbus"), "gdbus", "libglib2.0-bin") ||
  requireTool(commandOnPath("dbus-send"), "dbus-send", "dbus-bin");

// The real clients on a real private bus: a stand-in owns org.freedesktop.systemd1 (no
// systemd runs here) and records the Reload call; PSI finds the bus through
// DBUS_SESSION_BUS_ADDRESS (user) and DBUS_SYSTEM_BUS_ADDRESS (system), as the clients do.
describe.skipIf(noBus)("daemonReload on a private D-Bus", () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  let bus: PrivateBus;

  beforeAll(async () => {
    dir = await tempDir("psi-dbus-");
    bus = await startPrivateBus(dir.path);
  });
  afterAll(async () => {
    await bus?.stop();
    await dir?.cleanup();
  });

  /** A PATH holding only `names`, linked to the installed clients. */
  async function onlyTools(label: string, names: string[]): Promise<string> {
    const bin = join(dir.path, label);
    await mkdir(bin, { recursive: true });
    for (const name of names) {
      const real = (process.env["PATH"] ?? "")
        .split(":")
        .map((entry) => join(entry, name))
        .find(existsExecutable);
      if (!real) throw new Error(`${name} not found`);
      await symlink(real, join(bin, name));
    }
    return bin;
  }

  for (const [via, scope] of [
    ["busctl", "user"],
    ["busctl", "system"],
    ["gdbus", "user"],
    ["dbus-send", "system"],
  ] as const) {
    it(`calls org.freedesktop.systemd1.Manager.Reload through ${via} (${scope} bus)`, async () => {
      const systemd = await ownBusName(bus.address, "org.freedesktop.systemd1");
      try {
        const PATH = await onlyTools(`${via}-${scope}`, [via]);
        const address = busEnv(bus.address);
        const env =
          scope === "user"
            ? { PATH, DBUS_SESSION_BUS_ADDRESS: address.DBUS_SESSION_BUS_ADDRESS }
            : { PATH, DBUS_SYSTEM_BUS_ADDRESS: address.DBUS_SYSTEM_BUS_ADDRESS };
        const outcome = await daemonReload({ scope, env, timeoutMs: 10_000 });
        expect(outcome).toEqual({ status: "reloaded", via });
        const call = await systemd.nextCall("Reload");
        expect(call).toMatchObject({
          path: "/org/freedesktop/systemd1",
          interface: "org.freedesktop.systemd1.Manager",
          member: "Reload",
        });
        expect(systemd.calls.filter((entry) => entry.member === "Reload")).toHaveLength(1);
      } finally {
        await systemd.close();
      }
    });
  }

  it("reports the bus's refusal when nobody owns org.freedesktop.systemd1, and no systemctl", async () => {
    const PATH = await onlyTools("nobody", ["busctl"]);
    const outcome = await daemonReload({
      scope: "user",
      env: { PATH, DBUS_SESSION_BUS_ADDRESS: bus.address },
      timeoutMs: 10_000,
    });
    expect(outcome.status).toBe("unavailable");
    const detail = outcome.status === "unavailable" ? outcome.detail : "";
    expect(detail).toMatch(/^busctl failed: /);
    expect(detail).toContain("systemctl is not installed");
  });
});

function existsExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}
