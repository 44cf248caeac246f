import { mkdir, stat, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import { isPsiError } from "@psi/core";
import { tempDir } from "@psi/testkit/tmp";
import { captureLogger, unixRequest } from "@psi/testkit/unix-http";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createLookupServer } from "../src/index.js";
import { mappingFor, tableProvider } from "./helpers.js";

describe("listen and close", () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  beforeEach(async () => {
    dir = await tempDir();
  });
  afterEach(() => dir.cleanup());

  const make = (
    extra: {
      drainTimeoutMs?: number;
      providers?: Map<string, ReturnType<typeof tableProvider>>;
    } = {},
  ) =>
    createLookupServer({
      stateDir: dir.path,
      providers: extra.providers ?? new Map(),
      logger: captureLogger().logger,
      ...(extra.drainTimeoutMs === undefined ? {} : { drainTimeoutMs: extra.drainTimeoutMs }),
    });

  it("creates the socket 0600 in a new directory 0700, and removes it on close", async () => {
    const socket = join(dir.path, "run", "psi", "psi.sock");
    const server = make();
    await server.listen({ path: socket });
    expect((await stat(socket)).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir.path, "run", "psi"))).mode & 0o777).toBe(0o700);
    expect(server.path).toBe(socket);
    await server.close();
    await expect(stat(socket)).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("leaves an existing directory's mode alone", async () => {
    await mkdir(join(dir.path, "run"), { mode: 0o755 });
    const server = make();
    await server.listen({ path: join(dir.path, "run", "psi.sock") });
    expect((await stat(join(dir.path, "run"))).mode & 0o777).toBe(0o755);
    await server.close();
  });

  it("replaces a stale socket file", async () => {
    const socket = join(dir.path, "psi.sock");
    // a socket whose process died: bound, then the handle dropped without unlinking
    const { spawnSync } = await import("node:child_process");
    spawnSync(process.execPath, [
      "-e",
      `require("net").createServer().listen(${JSON.stringify(socket)}, () => process.kill(process.pid, "SIGKILL"))`,
    ]);
    expect((await stat(socket)).isSocket()).toBe(true);
    const server = make();
    await server.listen({ path: socket });
    expect((await unixRequest(socket, { path: "/healthz" })).text).toBe("ok");
    await server.close();
  });

  it("refuses a socket another process serves, and a path that is not a socket", async () => {
    const socket = join(dir.path, "psi.sock");
    const other = createServer();
    await new Promise<void>((resolve) => other.listen(socket, resolve));
    const error = await make()
      .listen({ path: socket })
      .catch((e: unknown) => e);
    expect(isPsiError(error, "server.socket_in_use")).toBe(true);
    await new Promise((resolve) => other.close(resolve));
    const file = join(dir.path, "file");
    await writeFile(file, "x");
    const notSocket = await make()
      .listen({ path: file })
      .catch((e: unknown) => e);
    expect(isPsiError(notSocket, "server.socket_path_taken")).toBe(true);
  });

  it("drains in-flight lookups before closing", async () => {
    const provider = tableProvider("infisical", { DB: "db.internal" });
    const server = make({ providers: new Map([["infisical", provider]]) });
    const socket = join(dir.path, "psi.sock");
    await server.listen({ path: socket });
    await writeFile(join(dir.path, "id1"), JSON.stringify(mappingFor("DB")));
    provider.hold();
    const pending = unixRequest(socket, { path: "/lookup/id1" });
    while (provider.calls < 1) await new Promise((r) => setTimeout(r, 5));
    let closed = false;
    const closing = server.close().then(() => {
      closed = true;
    });
    // The listener is gone (a new request is refused) while the held lookup keeps close open.
    await expect(unixRequest(socket, { path: "/healthz" })).rejects.toBeTruthy();
    expect(closed).toBe(false);
    provider.release();
    const answer = await pending;
    expect(answer.status).toBe(200);
    expect(answer.text).toBe("db.internal");
    await closing;
    await expect(stat(socket)).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("cuts requests still running after the drain timeout", async () => {
    const provider = tableProvider("infisical", { DB: "db.internal" });
    const server = make({ providers: new Map([["infisical", provider]]), drainTimeoutMs: 100 });
    const socket = join(dir.path, "psi.sock");
    await server.listen({ path: socket });
    await writeFile(join(dir.path, "id1"), JSON.stringify(mappingFor("DB")));
    provider.hold();
    const pending = unixRequest(socket, { path: "/lookup/id1" }).catch(
      (e: NodeJS.ErrnoException) => e.code,
    );
    while (provider.calls < 1) await new Promise((r) => setTimeout(r, 5));
    await server.close();
    expect(await pending).toBe("ECONNRESET");
    provider.release();
  });
});
