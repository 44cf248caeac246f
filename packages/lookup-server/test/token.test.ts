import { chmod, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { isPsiError } from "@psi/core";
import { tempDir } from "@psi/testkit/tmp";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { resolveSocketToken, SOCKET_TOKEN_PATTERN, socketActivation } from "../src/index.js";

describe("resolveSocketToken", () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  let creds: string;
  beforeEach(async () => {
    dir = await tempDir();
    creds = join(dir.path, "creds");
    await mkdir(creds);
  });
  afterEach(() => dir.cleanup());

  it("is off when no source has a token", async () => {
    expect(await resolveSocketToken({ env: {} })).toEqual({ token: undefined, source: undefined });
    expect(
      await resolveSocketToken({
        env: { CREDENTIALS_DIRECTORY: creds, PSI_SOCKET_TOKEN: "" },
        configToken: "",
      }),
    ).toEqual({
      token: undefined,
      source: undefined,
    });
  });

  it("prefers the credential (trimmed), then the config, then PSI_SOCKET_TOKEN", async () => {
    const env = { CREDENTIALS_DIRECTORY: creds, PSI_SOCKET_TOKEN: "from-env-123" };
    expect(await resolveSocketToken({ env })).toEqual({ token: "from-env-123", source: "env" });
    expect(await resolveSocketToken({ env, configToken: "from-config-1" })).toEqual({
      token: "from-config-1",
      source: "config",
    });
    await writeFile(join(creds, "psi-socket-token"), "from-credential\n");
    expect(await resolveSocketToken({ env, configToken: "from-config-1" })).toEqual({
      token: "from-credential",
      source: "credential",
    });
  });

  it("fails startup on a token that does not fit a shell command line, naming the source not the token", async () => {
    const cases: Array<[Parameters<typeof resolveSocketToken>[0], string]> = [
      [{ env: { PSI_SOCKET_TOKEN: "short" } }, "PSI_SOCKET_TOKEN"],
      [{ env: {}, configToken: "has space in it" }, "socket_token"],
      [{ env: {}, configToken: "quote'breaks-shell" }, "socket_token"],
      [{ env: {}, configToken: "semi;colon;;;" }, "socket_token"],
    ];
    for (const [options, where] of cases) {
      const error = await resolveSocketToken(options).catch((e: unknown) => e);
      expect(isPsiError(error, "socket_token.invalid")).toBe(true);
      expect((error as Error).message).toContain(where);
      const secret = options.configToken ?? options.env["PSI_SOCKET_TOKEN"]!;
      expect((error as Error).message.includes(secret)).toBe(false);
    }
    await writeFile(join(creds, "psi-socket-token"), "bad token with spaces");
    const error = await resolveSocketToken({ env: { CREDENTIALS_DIRECTORY: creds } }).catch(
      (e: unknown) => e,
    );
    expect((error as Error).message).toContain(join(creds, "psi-socket-token"));
  });

  it("reports an unreadable credential", async () => {
    await mkdir(join(creds, "psi-socket-token"));
    const error = await resolveSocketToken({ env: { CREDENTIALS_DIRECTORY: creds } }).catch(
      (e: unknown) => e,
    );
    expect(isPsiError(error, "socket_token.unreadable")).toBe(true);
    await chmod(creds, 0o700);
  });

  it("accepts exactly the documented alphabet", () => {
    expect(SOCKET_TOKEN_PATTERN.test("Az09._~+/=-")).toBe(true);
    expect(SOCKET_TOKEN_PATTERN.test("abcdefg")).toBe(false);
    for (const bad of ["abcdefgh$", "abcdefgh`", "abcdefgh\n", "abcdéfgh", 'abcdefg"']) {
      expect(SOCKET_TOKEN_PATTERN.test(bad), bad).toBe(false);
    }
  });
});

describe("socketActivation", () => {
  it("takes fd 3 only when LISTEN_PID names this process", () => {
    expect(socketActivation({ LISTEN_FDS: "1", LISTEN_PID: "42" }, 42)).toEqual({ fd: 3 });
    expect(socketActivation({ LISTEN_FDS: "2", LISTEN_PID: "42" }, 42)).toEqual({ fd: 3 });
    expect(socketActivation({ LISTEN_FDS: "1", LISTEN_PID: "41" }, 42)).toBeUndefined();
    expect(socketActivation({ LISTEN_FDS: "0", LISTEN_PID: "42" }, 42)).toBeUndefined();
    expect(socketActivation({ LISTEN_FDS: "x", LISTEN_PID: "42" }, 42)).toBeUndefined();
    expect(socketActivation({ LISTEN_PID: "42" }, 42)).toBeUndefined();
    expect(socketActivation({}, 42)).toBeUndefined();
  });
});
