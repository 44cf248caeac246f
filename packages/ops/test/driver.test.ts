import { mkdir, readdir, readFile, stat, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { tempDir } from "@psi/testkit/tmp";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { expectedDriverOptions, installDriverConf, planDriverInstall } from "../src/index.js";

// The driver conf psi install writes, and the options setup expects secrets to carry.

let dir: { path: string; cleanup: () => Promise<void> };
let env: Record<string, string>;
// User scope whatever runs the tests (root included): every path is under the temp HOME,
// never /etc/containers.
const uid = 1000;
beforeEach(async () => {
  dir = await tempDir("psi-ops-driver-");
  env = {
    HOME: dir.path,
    XDG_RUNTIME_DIR: join(dir.path, "run"),
    XDG_CONFIG_HOME: join(dir.path, "cfg"),
  };
});
afterEach(async () => {
  await dir.cleanup();
});

describe("planDriverInstall", () => {
  it("names the socket and, with a token, carries it at 0600", async () => {
    const plain = await planDriverInstall({ loaded: undefined, env, uid, socket: "/s/psi.sock" });
    expect(plain).toMatchObject({ socket: "/s/psi.sock", hasToken: false, mode: 0o644 });
    expect(plain.text).toContain("/s/psi.sock");
    const token = "a".repeat(64);
    const withToken = await planDriverInstall({
      loaded: undefined,
      env: { ...env, PSI_SOCKET_TOKEN: token },
      uid,
    });
    expect(withToken).toMatchObject({ hasToken: true, mode: 0o600 });
    expect(withToken.text).toContain(token);
  });
});

describe("expectedDriverOptions", () => {
  it("prefers the installed conf unless a socket is named", async () => {
    const plan = await planDriverInstall({ loaded: undefined, env, uid });
    expect(plan.path.startsWith(dir.path)).toBe(true);
    const fresh = await expectedDriverOptions({ loaded: undefined, env, uid });
    expect(Object.keys(fresh).length).toBeGreaterThan(0);
    // An installed conf for another socket (install --socket once) is what Podman holds.
    const other = await planDriverInstall({ loaded: undefined, env, uid, socket: "/other.sock" });
    await mkdir(join(plan.path, ".."), { recursive: true });
    await writeFile(plan.path, other.text);
    const installed = await expectedDriverOptions({ loaded: undefined, env, uid });
    expect(installed).not.toEqual(fresh);
    expect(JSON.stringify(installed)).toContain("/other.sock");
    const named = await expectedDriverOptions({ loaded: undefined, env, uid, socket: plan.socket });
    expect(named).toEqual(fresh);
  });
});

describe("installDriverConf", () => {
  it("writes the planned conf at 0644, and at 0600 from creation once it carries a token", async () => {
    const plain = await installDriverConf({ loaded: undefined, env, uid, socket: "/s/psi.sock" });
    expect(plain.path).toBe(join(dir.path, ".config/containers/containers.conf.d/psi.conf"));
    expect(await readFile(plain.path, "utf8")).toBe(plain.text);
    expect((await stat(plain.path)).mode & 0o777).toBe(0o644);
    const token = "b".repeat(64);
    const secret = await installDriverConf({
      loaded: undefined,
      env: { ...env, PSI_SOCKET_TOKEN: token },
      uid,
    });
    expect(secret.path).toBe(plain.path);
    expect(await readFile(secret.path, "utf8")).toContain(token);
    expect((await stat(secret.path)).mode & 0o777).toBe(0o600);
    // Replaced, not rewritten in place: no temp file is left beside it.
    expect(await readdir(dirname(secret.path))).toEqual(["psi.conf"]);
  });
});
