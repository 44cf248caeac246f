import { chmod, mkdir, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Provider } from "@psi/core";
import { isPsiError } from "@psi/core";
import { tempDir } from "@psi/testkit/tmp";
import { captureLogger, unixRequest } from "@psi/testkit/unix-http";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { closeServe, createLookupServer, prepareServeDirs, reloadServe } from "../src/index.js";

// serve's lifecycle around the server, on real directories and a real socket.

let dir: { path: string; cleanup: () => Promise<void> };
const uid = process.getuid!();
beforeEach(async () => {
  dir = await tempDir("psi-lifecycle-");
});
afterEach(async () => {
  await dir.cleanup();
});

describe("prepareServeDirs", () => {
  it("creates the socket directory and state_dir 0700", async () => {
    const stateDir = join(dir.path, "state");
    const run = join(dir.path, "run");
    await prepareServeDirs({ stateDir, target: { path: join(run, "psi.sock") }, uid });
    expect((await stat(stateDir)).mode & 0o777).toBe(0o700);
    expect((await stat(run)).mode & 0o777).toBe(0o700);
  });

  it("refuses a state_dir others can write unless allowed", async () => {
    const stateDir = join(dir.path, "open");
    await mkdir(stateDir);
    await chmod(stateDir, 0o777);
    const error = await prepareServeDirs({ stateDir, target: { fd: 3 }, uid }).catch(
      (e: unknown) => e,
    );
    expect(isPsiError(error, "serve.insecure_dir")).toBe(true);
    await prepareServeDirs({ stateDir, target: { fd: 3 }, uid, allowInsecure: true });
  });
});

describe("reloadServe", () => {
  it("takes a new socket_token from the configuration; an unreadable one keeps the current", async () => {
    const stateDir = join(dir.path, "state");
    await mkdir(stateDir, { mode: 0o700 });
    const socket = join(dir.path, "psi.sock");
    const configFile = join(dir.path, "config.yaml");
    const { logger } = captureLogger("warn");
    const server = createLookupServer({
      stateDir,
      providers: new Map(),
      cache: undefined,
      token: "old-token-1234",
      logger,
    });
    await server.listen({ path: socket });
    const list = (token: string) =>
      unixRequest(socket, { path: "/list", headers: { Authorization: `Bearer ${token}` } });
    try {
      expect((await list("old-token-1234")).status).toBe(200);
      await writeFile(configFile, `state_dir: ${stateDir}\nsocket_token: new-token-5678\n`);
      await reloadServe({ configFile, env: {}, uid, server, cache: undefined, logger });
      expect((await list("old-token-1234")).status).toBe(401);
      expect((await list("new-token-5678")).status).toBe(200);

      await writeFile(configFile, `state_dir: ${stateDir}\nsocket_token: "has space"\n`);
      await reloadServe({ configFile, env: {}, uid, server, cache: undefined, logger });
      expect((await list("new-token-5678")).status).toBe(200);
    } finally {
      await server.close();
    }
  });
});

describe("closeServe", () => {
  it("closes every provider even when one fails, and logs the failure", async () => {
    const closed: string[] = [];
    const provider = (name: string, fail: boolean): Provider => ({
      name,
      async open() {},
      async lookup() {
        return Buffer.alloc(0);
      },
      async close() {
        closed.push(name);
        if (fail) throw new Error("stuck");
      },
    });
    const { logger, text } = captureLogger("warn");
    await closeServe(
      new Map([
        ["a", provider("a", true)],
        ["b", provider("b", false)],
      ]),
      undefined,
      logger,
    );
    expect(closed.sort()).toEqual(["a", "b"]);
    expect(text()).toContain("provider a failed to close");
  });
});
