import { chmod, mkdir, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { isPsiError, loadConfig } from "@psi/core";
import { tempDir } from "@psi/testkit/tmp";
import { captureLogger, unixRequest } from "@psi/testkit/unix-http";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { startServe } from "../src/index.js";
import { mappingFor, tableProvider } from "./helpers.js";

// startServe on a real configuration file, real directories and a real socket: what `psi
// serve` does between reading the configuration and answering lookups, and its shutdown.

let dir: { path: string; cleanup: () => Promise<void> };
const uid = process.getuid!();
beforeEach(async () => {
  dir = await tempDir("psi-start-serve-");
});
afterEach(async () => {
  await dir.cleanup();
});

async function writeConfig(extra = ""): Promise<{ configFile: string; stateDir: string }> {
  const stateDir = join(dir.path, "state");
  const configFile = join(dir.path, "config.yaml");
  await writeFile(configFile, `state_dir: ${stateDir}\ncache:\n  enabled: false\n${extra}`);
  return { configFile, stateDir };
}

describe("startServe", () => {
  it("listens on PSI_SOCKET, answers from the opened providers, reloads the token, and closes everything", async () => {
    const { configFile, stateDir } = await writeConfig("socket_token: first-token-1234\n");
    const socket = join(dir.path, "run", "psi.sock");
    const env = { PSI_SOCKET: socket };
    const provider = tableProvider("infisical", { DB: "s3cret" });
    let closed = 0;
    provider.close = async () => {
      closed++;
    };
    const log = captureLogger("debug");
    const serve = await startServe({
      loadConfig: () => loadConfig({ path: configFile, env, uid }),
      env,
      uid,
      logger: log.logger,
      openProviders: async () => new Map([["infisical", provider]]),
      openCacheBackend: async () => undefined,
    });
    expect(serve).toBeDefined();
    if (serve === undefined) return;
    try {
      // The directories serve prepared are private.
      expect((await stat(stateDir)).mode & 0o777).toBe(0o700);
      expect((await stat(join(dir.path, "run"))).mode & 0o777).toBe(0o700);
      await writeFile(join(stateDir, "id1"), JSON.stringify(mappingFor("DB")), { mode: 0o600 });
      const lookup = (token: string) =>
        unixRequest(socket, {
          path: "/lookup/id1",
          headers: { Authorization: `Bearer ${token}` },
        });
      const answer = await lookup("first-token-1234");
      expect(answer.status).toBe(200);
      expect(answer.body.toString()).toBe("s3cret");
      const listen = log.records().find((r) => r.event === "listen");
      expect(listen).toMatchObject({ path: socket, providers: ["infisical"], cache: "off" });

      await writeFile(
        configFile,
        `state_dir: ${stateDir}\ncache:\n  enabled: false\nsocket_token: second-token-5678\n`,
      );
      await serve.reload();
      expect((await lookup("first-token-1234")).status).toBe(401);
      expect((await lookup("second-token-5678")).status).toBe(200);
    } finally {
      await serve.close("SIGTERM");
    }
    expect(closed).toBe(1);
    await expect(stat(socket)).rejects.toMatchObject({ code: "ENOENT" });
    expect(log.records().map((r) => r.msg)).toContain(
      "SIGTERM: finishing requests in flight, then stopping",
    );
  });

  it("a stop asked for during startup ends before listening and opens nothing", async () => {
    const { configFile } = await writeConfig();
    const socket = join(dir.path, "psi.sock");
    const stop = new AbortController();
    let opened = false;
    const log = captureLogger("debug");
    const serve = await startServe({
      loadConfig: async () => {
        const loaded = await loadConfig({ path: configFile, env: {}, uid });
        stop.abort("SIGINT");
        return loaded;
      },
      env: {},
      uid,
      logger: log.logger,
      socket,
      openProviders: async () => {
        opened = true;
        return new Map();
      },
      openCacheBackend: async () => undefined,
      signal: stop.signal,
    });
    expect(serve).toBeUndefined();
    expect(opened).toBe(false);
    await expect(stat(socket)).rejects.toMatchObject({ code: "ENOENT" });
    expect(log.records().map((r) => r.msg)).toContain(
      "SIGINT during startup: stopping before listening",
    );
  });

  it("refuses an invalid socket token before creating anything", async () => {
    const { configFile, stateDir } = await writeConfig();
    const env = { PSI_SOCKET_TOKEN: "short" };
    const error = await startServe({
      loadConfig: () => loadConfig({ path: configFile, env, uid }),
      env,
      uid,
      logger: captureLogger("warn").logger,
      socket: join(dir.path, "run", "psi.sock"),
      openProviders: async () => new Map(),
      openCacheBackend: async () => undefined,
    }).catch((e: unknown) => e);
    expect(isPsiError(error, "socket_token.invalid")).toBe(true);
    await expect(stat(stateDir)).rejects.toMatchObject({ code: "ENOENT" });
    await expect(stat(join(dir.path, "run"))).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("a state_dir others can write is refused unless serve.allow_insecure_dirs", async () => {
    const { configFile, stateDir } = await writeConfig();
    await mkdir(stateDir, { mode: 0o777 });
    await chmod(stateDir, 0o777);
    const error = await startServe({
      loadConfig: () => loadConfig({ path: configFile, env: {}, uid }),
      env: {},
      uid,
      logger: captureLogger("warn").logger,
      socket: join(dir.path, "psi.sock"),
      openProviders: async () => new Map(),
      openCacheBackend: async () => undefined,
    }).catch((e: unknown) => e);
    expect(isPsiError(error, "serve.insecure_dir")).toBe(true);
  });
});
