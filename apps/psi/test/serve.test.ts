import { execFileSync, spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { chmod, chown, copyFile, mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { saveCache } from "@psi/cache";
import { createKeyfileCacheBackend, initKeyfile } from "@psi/cache-keyfile";
import { requireTool } from "@psi/testkit/tmp";
import { unixRequest } from "@psi/testkit/unix-http";
import { beforeEach, describe, expect, it } from "vitest";
import { LIVE_VALUE, MAPPING, PROJECT_ID, useServeFixture } from "./serve-fixture.js";
import { CLI, firstActivatedRequest, type Serve } from "./serve-helpers.js";

// These tests run the built CLI as a real process (signals, socket activation, process
// hardening): `pnpm exec turbo run build --filter=@psi/cli...` first.
const VECTORS = fileURLToPath(new URL("../../../vectors/", import.meta.url));
const CACHED_VALUE = "cached-hunter2";

const fx = useServeFixture();

/** `psi serve` with exactly these arguments (a `--socket` only where the test passes one). */
function startServe(
  args: string[],
  options: { env?: Record<string, string>; command?: string[]; uid?: number } = {},
): Serve {
  return fx.spawn({ socket: fx.socket, args, ...options });
}

// The Infisical provider waits long for a live lookup; `cache` is the cache block's line.
const writeConfig = (cache: string) => fx.writeConfig(["    lookup_timeout: 10", cache]);

async function writeCachedValue(value: string): Promise<void> {
  const backend = createKeyfileCacheBackend({ path: fx.keyFile });
  await backend.open();
  await saveCache({
    path: fx.cachePath,
    backend,
    fetched: [{ mapping: MAPPING, value: Buffer.from(value) }],
    prune: true,
  });
  await backend.close();
}

beforeEach(async () => {
  await initKeyfile({ path: fx.keyFile });
});

describe("psi serve", () => {
  it("serves cache hits, drains on SIGTERM, removes the socket and exits 0", async () => {
    await writeConfig(fx.keyfileCache());
    await writeCachedValue(CACHED_VALUE);
    const serve = startServe(["--socket", join(fx.dir, "run", "psi.sock")]);
    const listening = await serve.waitFor((r) => r.event === "listen", "Listening on");
    expect(listening.msg).toBe(`Listening on ${serve.socket}`);
    expect((await stat(serve.socket)).mode & 0o777).toBe(0o600);
    expect((await stat(join(fx.dir, "run"))).mode & 0o777).toBe(0o700);
    const hit = await unixRequest(serve.socket, { path: "/lookup/id1" });
    expect(hit.status).toBe(200);
    expect(hit.text).toBe(CACHED_VALUE);
    // a slow provider call in flight when SIGTERM arrives still gets its answer
    await writeFile(join(fx.stateDir, "id2"), JSON.stringify({ ...MAPPING, key: "OTHER" }), {
      mode: 0o600,
    });
    fx.fake.setSecret({
      projectId: PROJECT_ID,
      environment: "prod",
      path: "/myapp",
      key: "OTHER",
      value: "slow-value",
    });
    fx.fake.slow(800);
    const inFlight = unixRequest(serve.socket, { path: "/lookup/id2" });
    // SIGTERM once the lookup is in flight: Infisical has the request (and holds it 800 ms).
    while (!fx.fake.requests.some((r) => r.path === "/api/v4/secrets/OTHER"))
      await new Promise((r) => setTimeout(r, 5));
    serve.child.kill("SIGTERM");
    const answer = await inFlight;
    expect(answer.status).toBe(200);
    expect(answer.text).toBe("slow-value");
    expect(await serve.exited).toEqual({ code: 0, signal: null });
    expect(existsSync(serve.socket)).toBe(false);
    expect(serve.records().some((r) => r.event === "shutdown" && r.msg === "stopped")).toBe(true);
    for (const value of [CACHED_VALUE, LIVE_VALUE, "slow-value"])
      expect(serve.stderr()).not.toContain(value);
  });

  it("picks up a cache refresh written by setup while running", async () => {
    await writeConfig(fx.keyfileCache());
    await writeCachedValue("first");
    const serve = startServe([], { env: { PSI_SOCKET: join(fx.dir, "run", "psi.sock") } });
    await serve.waitFor((r) => r.event === "listen", "Listening on");
    expect((await unixRequest(serve.socket, { path: "/lookup/id1" })).text).toBe("first");
    await writeCachedValue("second");
    // inotify reports the rename within milliseconds; serve is never restarted
    const deadline = Date.now() + 5000;
    let text = "";
    while (text !== "second" && Date.now() < deadline) {
      text = (await unixRequest(serve.socket, { path: "/lookup/id1" })).text;
      if (text !== "second") await new Promise((r) => setTimeout(r, 10));
    }
    expect(text).toBe("second");
    serve.child.kill("SIGINT");
    expect((await serve.exited).code).toBe(0);
  });

  it("warns and answers live when the cache file is corrupt", async () => {
    await writeConfig(fx.keyfileCache());
    await copyFile(join(VECTORS, "tampered.enc"), fx.cachePath);
    const serve = startServe(["--socket", join(fx.dir, "run", "psi.sock")]);
    const warning = await serve.waitFor(
      (r) => r.event === "cache.load" && r.level === "warn",
      "the cache warning",
    );
    expect(String(warning["error"])).toContain(fx.cachePath);
    await serve.waitFor((r) => r.event === "listen", "Listening on");
    const live = await unixRequest(serve.socket, { path: "/lookup/id1" });
    expect(live.status).toBe(200);
    expect(live.text).toBe(LIVE_VALUE);
    serve.child.kill("SIGTERM");
    expect((await serve.exited).code).toBe(0);
  });

  it("names both tags and the fix when cache.enc was written by another backend", async () => {
    await writeConfig(fx.keyfileCache());
    await copyFile(join(VECTORS, "tpm-cache.enc"), fx.cachePath);
    const serve = startServe(["--socket", join(fx.dir, "run", "psi.sock")]);
    const warning = await serve.waitFor(
      (r) => r.event === "cache.load" && r.level === "warn",
      "the tag warning",
    );
    expect(warning["code"]).toBe("cache.tag_mismatch");
    const text = `${warning.msg} ${String(warning["error"])} ${String(warning["hint"])}`;
    expect(text).toContain("0x01");
    expect(text).toContain("0x03");
    expect(text).toContain("tpm");
    expect(text).toContain("keyfile");
    expect(text).toContain("psi cache init");
    serve.child.kill("SIGTERM");
    expect((await serve.exited).code).toBe(0);
  });

  it("warns when the cache is enabled without a backend, or the key is missing, and runs live", async () => {
    await writeConfig("cache: { enabled: true }");
    const noBackend = startServe(["--socket", join(fx.dir, "run", "psi.sock")]);
    const warning = await noBackend.waitFor(
      (r) => r.event === "cache.open" && r.level === "warn",
      "the warning",
    );
    expect(warning.msg).toContain("cache.backend is not set");
    await noBackend.waitFor((r) => r.event === "listen", "Listening on");
    expect((await unixRequest(noBackend.socket, { path: "/lookup/id1" })).text).toBe(LIVE_VALUE);
    noBackend.child.kill("SIGTERM");
    expect((await noBackend.exited).code).toBe(0);

    await writeConfig(`cache: { backend: keyfile, key_file: ${join(fx.dir, "nope.keyfile")} }`);
    const noKey = startServe(["--socket", join(fx.dir, "run", "psi.sock")]);
    const missing = await noKey.waitFor(
      (r) => r.event === "cache.open" && r.level === "warn",
      "the key warning",
    );
    expect(String(missing["hint"])).toContain("psi cache init --backend keyfile");
    await noKey.waitFor((r) => r.event === "listen", "Listening on");
    expect((await unixRequest(noKey.socket, { path: "/lookup/id1" })).text).toBe(LIVE_VALUE);
    noKey.child.kill("SIGTERM");
    expect((await noKey.exited).code).toBe(0);
  });

  it("requires the token from the credential, and refuses an invalid one at startup", async () => {
    await writeConfig(fx.keyfileCache());
    const creds = join(fx.dir, "creds");
    await mkdir(creds);
    await writeFile(join(creds, "psi-socket-token"), "cred-token-12345\n");
    const serve = startServe(["--socket", join(fx.dir, "run", "psi.sock")], {
      env: { CREDENTIALS_DIRECTORY: creds, PSI_SOCKET_TOKEN: "ignored-env-token" },
    });
    await serve.waitFor((r) => r.event === "listen", "Listening on");
    expect((await unixRequest(serve.socket, { path: "/lookup/id1" })).status).toBe(401);
    const ok = await unixRequest(serve.socket, {
      path: "/lookup/id1",
      headers: { authorization: "Bearer cred-token-12345" },
    });
    expect(ok.text).toBe(LIVE_VALUE);
    serve.child.kill("SIGTERM");
    expect((await serve.exited).code).toBe(0);

    const bad = startServe(["--socket", join(fx.dir, "run", "bad.sock")], {
      env: { PSI_SOCKET_TOKEN: "has spaces in it" },
    });
    expect((await bad.exited).code).toBe(1);
    expect(bad.stderr()).toContain("PSI_SOCKET_TOKEN");
    expect(bad.stderr()).not.toContain("has spaces in it");
    expect(existsSync(join(fx.dir, "run", "bad.sock"))).toBe(false);
  });

  it("takes its socket from systemd socket activation (LISTEN_FDS, fd 3)", async (ctx) => {
    // A missing tool is a reported skip (and a failure naming the package when CI is set).
    if (
      requireTool(
        existsSync("/usr/bin/systemd-socket-activate"),
        "systemd-socket-activate",
        "systemd",
      )
    )
      ctx.skip();
    await writeConfig(fx.keyfileCache());
    await writeCachedValue(CACHED_VALUE);
    const socket = join(fx.dir, "activated.sock");
    const serve = startServe(["--socket", join(fx.dir, "ignored.sock")], {
      command: ["systemd-socket-activate", "-l", socket],
    });
    // the first connection starts serve (see firstActivatedRequest)
    const early = firstActivatedRequest(socket, "/lookup/id1");
    const listening = await serve.waitFor((r) => r.event === "listen", "Listening on");
    expect(listening).toMatchObject({ fd: 3, activated: true });
    expect((await early).text).toBe(CACHED_VALUE);
    expect(existsSync(join(fx.dir, "ignored.sock"))).toBe(false);
    serve.child.kill("SIGTERM");
    expect((await serve.exited).code).toBe(0);
  });

  it("makes itself non-dumpable and disables core dumps", async () => {
    await writeConfig(fx.keyfileCache());
    await writeCachedValue(CACHED_VALUE);
    // run as an unprivileged user so /proc shows the effect of PR_SET_DUMPABLE=0:
    // the files of a non-dumpable process belong to root instead of its own uid
    const uid = 65534;
    // ...which needs root, and a checkout that user can reach: a clone under a private
    // directory (`mktemp -d` makes it 0700) cannot, and then only the checks that hold for
    // a root process are made, with a note.
    const canSwitch =
      process.getuid?.() === 0 &&
      spawnSync(process.execPath, [CLI, "--version"], { uid, gid: uid }).status === 0;
    if (!canSwitch && process.getuid?.() === 0)
      console.warn(`uid ${uid} cannot run ${CLI}: non-dumpable checked only as root`);
    if (canSwitch) {
      execFileSync("chown", ["-R", `${uid}:${uid}`, fx.dir]);
      await chmod(fx.dir, 0o755);
      await chown(fx.config, uid, uid);
    }
    const serve = startServe(
      ["--socket", join(fx.dir, "run", "psi.sock"), "--log-level", "debug"],
      canSwitch ? { uid } : {},
    );
    await serve.waitFor((r) => r.event === "listen", "Listening on");
    const pid = serve.child.pid!;
    const limits = await readFile(`/proc/${pid}/limits`, "utf8");
    expect(limits).toMatch(/Max core file size\s+0\s+0\s+bytes/);
    expect(serve.records().find((r) => r.event === "harden")?.level).toBe("debug");
    if (canSwitch) {
      // (the /proc/<pid> directory itself keeps the process's uid; its files switch to root)
      expect((await stat(`/proc/${pid}/environ`)).uid).toBe(0);
      expect((await stat(`/proc/${pid}/status`)).uid).toBe(0);
    }
    serve.child.kill("SIGTERM");
    expect((await serve.exited).code).toBe(0);
  });

  it("answers 64 concurrent curl lookups without a failure", async (ctx) => {
    if (requireTool(existsSync("/usr/bin/curl"), "curl", "curl")) ctx.skip();
    await writeConfig(fx.keyfileCache());
    await writeCachedValue(CACHED_VALUE);
    const serve = startServe(["--socket", join(fx.dir, "run", "psi.sock")]);
    await serve.waitFor((r) => r.event === "listen", "Listening on");
    const results = await Promise.all(
      Array.from(
        { length: 64 },
        () =>
          new Promise<string>((resolve) => {
            const curl = spawn("curl", [
              "-sf",
              "--unix-socket",
              serve.socket,
              "http://localhost/lookup/id1",
            ]);
            let out = "";
            curl.stdout.on("data", (d: Buffer) => {
              out += d.toString();
            });
            curl.on("close", (code) => resolve(code === 0 ? out : `exit ${code}`));
          }),
      ),
    );
    expect(results.filter((r) => r !== CACHED_VALUE)).toEqual([]);
    serve.child.kill("SIGTERM");
    expect((await serve.exited).code).toBe(0);
  });
});
