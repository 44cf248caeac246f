import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import { saveCache } from "@psi/cache";
import { createKeyfileCacheBackend, initKeyfile } from "@psi/cache-keyfile";
import { requireTool } from "@psi/testkit/tmp";
import { unixRequest } from "@psi/testkit/unix-http";
import { NODE_FLAGS } from "@psi/unitgen";
import { afterEach, describe, expect, it } from "vitest";
import { commandOf, commandWords } from "../src/argv.js";
import { hasFlag } from "../src/node-flags.js";
import { LIVE_VALUE, MAPPING, useServeFixture } from "./serve-fixture.js";
import {
  CLI,
  firstActivatedRequest,
  killRunning,
  type Serve,
  spawnServe,
} from "./serve-helpers.js";

// Signals sent to a running `psi serve` (built CLI, real process): SIGUSR1 must never open
// Node's inspector, however serve was started; SIGHUP reloads; shutdown is bounded
// (issue 9, SPEC §13).
const FLAG = "--disable-sigusr1";
const fx = useServeFixture();
const running: ChildProcess[] = [];
afterEach(() => killRunning(running));

/** Inodes of the sockets `pid` holds open. */
function socketInodes(pid: number): Set<string> {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const match = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (match) inodes.add(match[1]!);
    } catch {
      // closed meanwhile
    }
  }
  return inodes;
}

/** TCP ports `pid` listens on (from /proc/net/tcp{,6}, state 0A = LISTEN). */
function tcpListeners(pid: number): number[] {
  const mine = socketInodes(pid);
  const ports: number[] = [];
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    for (const line of readFileSync(table, "utf8").split("\n").slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields[3] === "0A" && mine.has(fields[9]!))
        ports.push(Number.parseInt(fields[1]!.split(":")[1]!, 16));
    }
  }
  return ports;
}

/** SIGUSR1 (signal 10) is in one of the signal masks of /proc/<pid>/status. */
function usr1In(pid: number, masks: string[]): boolean {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return masks.some((name) => {
    const hex = new RegExp(`^${name}:\\s*([0-9a-f]+)$`, "m").exec(status)?.[1] ?? "0";
    return (BigInt(`0x${hex}`) & (1n << 9n)) !== 0n;
  });
}

/**
 * Sends SIGUSR1 and waits for its outcome. Node's inspector trigger is a SIGUSR1 handler
 * (SigCgt); without one, Node keeps the signal blocked, so it stays pending, unused,
 * while serve runs. With one, the inspector says "Debugger listening".
 */
async function sendUsr1(child: ChildProcess, stderr: () => string): Promise<string> {
  const pid = child.pid!;
  const caught = usr1In(pid, ["SigCgt"]);
  process.kill(pid, "SIGUSR1");
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (/Debugger listening/.test(stderr())) return `inspector opened:\n${stderr()}`;
    if (child.exitCode !== null || child.signalCode !== null)
      return `exited (${child.exitCode ?? child.signalCode}):\n${stderr()}`;
    if (!caught && usr1In(pid, ["SigPnd", "ShdPnd"])) return "ignored";
    if (Date.now() > deadline) return `no outcome within 20 s:\n${stderr()}`;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function expectNoInspector(serve: Serve): Promise<void> {
  const pid = serve.child.pid!;
  expect(await sendUsr1(serve.child, serve.stderr)).toBe("ignored");
  expect(tcpListeners(pid)).toEqual([]);
  const health = await unixRequest(serve.socket, { path: "/healthz" });
  expect(health.status).toBe(200);
  const hit = await unixRequest(serve.socket, { path: "/lookup/id1" });
  expect(hit.status).toBe(200);
  expect(hit.text).toBe(LIVE_VALUE);
  expect(serve.stderr()).not.toContain("Debugger listening");
}

/** `node dist/cli.js demo --no-podman` on a socket in the fixture; resolves once it serves. */
async function startDemo(
  socket: string,
): Promise<{ child: ChildProcess; stdout: string; stderr: () => string }> {
  const child = spawn(process.execPath, [CLI, "demo", "--socket", socket, "--no-podman"], {
    env: {
      PATH: process.env["PATH"] ?? "/usr/bin:/bin",
      HOME: join(fx.dir, "home"),
      XDG_RUNTIME_DIR: fx.dir,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  running.push(child);
  let stdout = "";
  let stderr = "";
  child.stderr!.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
      if (stdout.includes("Serving until Ctrl-C")) resolve();
    });
    child.on("exit", () => reject(new Error(`demo exited early:\n${stderr}`)));
  });
  return { child, stdout, stderr: () => stderr };
}

function cmdline(pid: number): string[] {
  return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean);
}

describe("SIGUSR1 never opens the inspector", () => {
  it("the built bin's shebang starts Node with --disable-sigusr1", async () => {
    expect(readFileSync(CLI, "utf8").split("\n")[0]).toBe(`#!/usr/bin/env -S node ${FLAG}`);
    const serve = fx.start({ direct: true });
    await serve.waitFor((r) => r.event === "listen", "Listening on");
    expect(cmdline(serve.child.pid!)).toContain(FLAG);
    await expectNoInspector(serve);
  });

  it("`node dist/cli.js serve` re-executes itself with the flag, keeping its PID", async () => {
    const serve = fx.start();
    await serve.waitFor((r) => r.event === "listen", "Listening on");
    // the PID the caller holds (systemd's LISTEN_PID, MAINPID) is the process serving
    expect(cmdline(serve.child.pid!).slice(1, NODE_FLAGS.serve.length + 2)).toEqual([
      ...NODE_FLAGS.serve,
      CLI,
    ]);
    await expectNoInspector(serve);
    serve.child.kill("SIGTERM");
    expect(await serve.exited).toEqual({ code: 0, signal: null });
  });

  it("a socket-activated `node dist/cli.js serve` keeps systemd's socket across the re-exec", async () => {
    if (
      requireTool(
        existsSync("/usr/bin/systemd-socket-activate"),
        "systemd-socket-activate",
        "systemd",
      )
    )
      return;
    const socket = join(fx.dir, "activated.sock");
    const serve = spawnServe({
      config: fx.config,
      socket,
      home: join(fx.dir, "home"),
      command: ["systemd-socket-activate", "-l", socket],
    });
    running.push(serve.child);
    // the first connection starts serve (see firstActivatedRequest)
    const early = firstActivatedRequest(socket, "/lookup/id1");
    const listening = await serve.waitFor((r) => r.event === "listen", "Listening on");
    expect(listening).toMatchObject({ fd: 3, activated: true });
    expect((await early).text).toBe(LIVE_VALUE);
    expect(cmdline(serve.child.pid!).slice(1, NODE_FLAGS.serve.length + 2)).toEqual([
      ...NODE_FLAGS.serve,
      CLI,
    ]);
    await expectNoInspector(serve);
  });

  it("NODE_OPTIONS=--disable-sigusr1 is honoured: the re-exec adds only serve's memory flags", async () => {
    const serve = fx.start({ env: { NODE_OPTIONS: FLAG } });
    await serve.waitFor((r) => r.event === "listen", "Listening on");
    expect(cmdline(serve.child.pid!)).not.toContain(FLAG);
    expect(cmdline(serve.child.pid!).slice(1, NODE_FLAGS.serve.length + 1)).toEqual([
      ...NODE_FLAGS.serve.filter((flag) => flag !== FLAG),
      CLI,
    ]);
    await expectNoInspector(serve);
  });

  it("an operator's own V8 setting is kept: the re-exec adds only the flags not given", async () => {
    const serve = fx.start({ env: { NODE_OPTIONS: "--max-semi-space-size=8" } });
    await serve.waitFor((r) => r.event === "listen", "Listening on");
    const added = NODE_FLAGS.serve.filter((flag) => !flag.startsWith("--max-semi-space-size"));
    expect(cmdline(serve.child.pid!).slice(1, added.length + 2)).toEqual([...added, CLI]);
    await expectNoInspector(serve);
  });

  it("NODE_OPTIONS=--no-disable-sigusr1 does not switch the inspector signal back on", async () => {
    const serve = fx.start({ env: { NODE_OPTIONS: `--no-${FLAG.slice(2)}` } });
    await serve.waitFor((r) => r.event === "listen", "Listening on");
    expect(cmdline(serve.child.pid!).slice(1, NODE_FLAGS.serve.length + 2)).toEqual([
      ...NODE_FLAGS.serve,
      CLI,
    ]);
    await expectNoInspector(serve);
  });

  it("which flags count as given: any value or form of a V8 setting, only the flag itself for SIGUSR1", () => {
    expect(hasFlag("--max-semi-space-size=1", ["--max-semi-space-size=8"])).toBe(true);
    expect(hasFlag("--max-semi-space-size=1", ["--max-semi-space-size"])).toBe(true);
    expect(hasFlag("--max-semi-space-size=1", ["--max-old-space-size=8"])).toBe(false);
    expect(hasFlag("--no-concurrent-recompilation", ["--concurrent-recompilation"])).toBe(true);
    expect(hasFlag("--no-concurrent-recompilation", ["--no-concurrent-recompilation"])).toBe(true);
    expect(hasFlag("--single-threaded-gc", ["--no-single-threaded-gc"])).toBe(true);
    expect(hasFlag("--single-threaded-gc", ["--single-threaded"])).toBe(false);
    expect(hasFlag(FLAG, [FLAG])).toBe(true);
    expect(hasFlag(FLAG, [`--no-${FLAG.slice(2)}`])).toBe(false);
    expect(hasFlag(FLAG, [FLAG, `--no-${FLAG.slice(2)}`])).toBe(false);
    expect(hasFlag(FLAG, [`--no-${FLAG.slice(2)}`, FLAG])).toBe(true);
  });

  it("`node dist/cli.js demo` re-executes itself with the flag too", async () => {
    const socket = join(fx.dir, "demo.sock");
    const { child, stderr } = await startDemo(socket);
    expect(cmdline(child.pid!).slice(1, 3)).toEqual([FLAG, CLI]);
    expect(await sendUsr1(child, stderr)).toBe("ignored");
    expect(tcpListeners(child.pid!)).toEqual([]);
    expect((await unixRequest(socket, { path: "/healthz" })).status).toBe(200);
    const exited = new Promise((resolve) => child.once("exit", (code) => resolve(code)));
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
  });

  it("short commands run without the re-exec", () => {
    expect(commandOf(["-c", "serve", "status"])).toBe("status");
    expect(commandOf(["--log-level", "debug", "--json", "serve", "--socket", "s"])).toBe("serve");
    expect(commandOf(["--version"])).toBeUndefined();
    expect(commandOf(["--", "demo"])).toBe("demo");
    // cli.ts picks the code cache by the first two words: a config named "cache" is none
    expect(commandWords(["-c", "cache", "cache", "status", "--verify"])).toEqual([
      "cache",
      "status",
    ]);
  });
});

describe("SIGHUP reloads, never kills", () => {
  const TOKEN_A = "token-aaaaaaaa";
  const TOKEN_B = "token-bbbbbbbb";
  const auth = (token: string) => ({ authorization: `Bearer ${token}` });

  it("re-reads the socket token from the configuration file", async () => {
    await fx.writeConfig([`socket_token: ${TOKEN_A}`]);
    const serve = fx.start();
    await serve.waitFor((r) => r.event === "listen", "Listening on");
    const before = await unixRequest(serve.socket, { path: "/lookup/id1", headers: auth(TOKEN_A) });
    expect(before.text).toBe(LIVE_VALUE);
    await fx.writeConfig([`socket_token: ${TOKEN_B}`]);
    serve.child.kill("SIGHUP");
    await serve.waitFor((r) => r.event === "reload" && r["source"] === "config", "the new token");
    const old = await unixRequest(serve.socket, { path: "/lookup/id1", headers: auth(TOKEN_A) });
    expect(old.status).toBe(401);
    const fresh = await unixRequest(serve.socket, { path: "/lookup/id1", headers: auth(TOKEN_B) });
    expect(fresh.text).toBe(LIVE_VALUE);
    // a broken token keeps the current one
    await fx.writeConfig(["socket_token: short"]);
    serve.child.kill("SIGHUP");
    await serve.waitFor((r) => r.event === "reload" && r.level === "warn", "the reload warning");
    const kept = await unixRequest(serve.socket, { path: "/lookup/id1", headers: auth(TOKEN_B) });
    expect(kept.status).toBe(200);
    expect(serve.stderr()).not.toContain(TOKEN_B);
    serve.child.kill("SIGTERM");
    expect(await serve.exited).toEqual({ code: 0, signal: null });
    expect(existsSync(serve.socket)).toBe(false);
  });

  it("re-reads a changed cache file at once", async () => {
    const keyFile = join(fx.dir, "cache.keyfile");
    const cachePath = join(fx.stateDir, "cache.enc");
    await initKeyfile({ path: keyFile });
    const writeCache = async (value: string) => {
      const backend = createKeyfileCacheBackend({ path: keyFile });
      await backend.open();
      await saveCache({
        path: cachePath,
        backend,
        fetched: [{ mapping: MAPPING, value: Buffer.from(value) }],
        prune: true,
      });
      await backend.close();
    };
    await writeCache("first");
    await fx.writeConfig([
      `cache: { enabled: true, backend: keyfile, key_file: ${keyFile}, path: ${cachePath} }`,
    ]);
    const serve = fx.start();
    await serve.waitFor((r) => r.event === "listen", "Listening on");
    await writeCache("second");
    // no lookup in between: only the hangup makes serve read the file
    serve.child.kill("SIGHUP");
    const reloaded = await serve.waitFor(
      (r) => r.event === "reload" && r["cache_changed"] !== undefined,
      "the cache reload",
    );
    expect(reloaded["cache_changed"]).toBe(true);
    expect(serve.records().some((r) => r.event === "cache.reload")).toBe(true);
    expect((await unixRequest(serve.socket, { path: "/lookup/id1" })).text).toBe("second");
  });
});

describe("swap", () => {
  it("serve says whether its memory can reach swap, and how to forbid it", async () => {
    const serve = fx.start({ args: ["--log-level", "debug"] });
    await serve.waitFor((r) => r.event === "listen", "Listening on");
    const record = serve.records().find((r) => r.event === "swap");
    const swapActive = readFileSync("/proc/swaps", "utf8").trim().split("\n").length > 1;
    if (swapActive) expect(String(record?.msg)).toMatch(/MemorySwapMax=0|forbids swap/);
    else expect(record).toMatchObject({ level: "debug", protected: true });
  });
});

describe("process edges", () => {
  it("an impossible socket path is a clear error, not a spin", async () => {
    const serve = fx.start({ socket: "/proc/nope/x.sock" });
    const { code } = await serve.exited;
    expect(code).toBe(1);
    expect(serve.stderr()).toContain("cannot create directory /proc/nope");
  });

  it("at shutdown, a provider call still running after the drain is aborted and answered", async () => {
    await fx.writeConfig(["    lookup_timeout: 120"]);
    const serve = fx.start();
    await serve.waitFor((r) => r.event === "listen", "Listening on");
    fx.fake.slow(120_000);
    const pending = unixRequest(serve.socket, { path: "/lookup/id1" }).catch(
      (error: NodeJS.ErrnoException) => ({ status: error.code, text: "" }),
    );
    while (fx.fake.requests.length === 0) await new Promise((r) => setTimeout(r, 20));
    serve.child.kill("SIGTERM");
    // the drain (10 s) ends, the call is aborted, and Podman's curl gets an answer
    const answer = await pending;
    expect(answer.status).toBe(502);
    expect(answer.text).toContain("aborted");
    expect(await serve.exited).toEqual({ code: 0, signal: null });
    const records = serve.records();
    expect(records.at(-1)?.msg).toBe("stopped");
  }, 40_000);

  it("psi demo removes its directory on SIGHUP (its terminal closed)", async () => {
    const socket = join(fx.dir, "demo.sock");
    const { child, stdout } = await startDemo(socket);
    const demoDir = /everything lives in (\S+) and is removed on exit/.exec(stdout)![1]!;
    expect(existsSync(demoDir)).toBe(true);
    const exited = new Promise((resolve) => child.once("exit", (code) => resolve(code)));
    child.kill("SIGHUP");
    expect(await exited).toBe(0);
    expect(existsSync(demoDir)).toBe(false);
    expect(existsSync(socket)).toBe(false);
  });
});
