import { execFile, execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  mkdir,
  readFile,
  rename,
  rm,
  symlink,
  truncate,
  unlink,
  writeFile,
} from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { saveCache } from "@psi/cache";
import { createKeyfileCacheBackend, initKeyfile } from "@psi/cache-keyfile";
import { createTpmCacheBackend } from "@psi/cache-tpm";
import { type CacheBackend, writeFileAtomic } from "@psi/core";
import { aesGcmBackend, type CacheCipher } from "@psi/envelope";
import { type LogRecord, unixRequest } from "@psi/testkit/unix-http";
import { beforeEach, describe, expect, it } from "vitest";
import { MAPPING, useServeFixture } from "./serve-fixture.js";
import { CLI, type Serve } from "./serve-helpers.js";

// Hostile files in state_dir and in place of cache.enc, and a key change under a running
// serve (SPEC §13 "Reliability and security"), against the built CLI as a real process:
// `pnpm exec turbo run build --filter=@psi/cli...` first.

const fx = useServeFixture();
// The Infisical provider waits long for a live lookup; `cache` is the cache block's line.
const writeConfig = (cache: string) => fx.writeConfig(["    lookup_timeout: 10", cache]);

/** What setup does: the whole file, written atomically with `cipher`. */
async function writeCache(value: string, cipher: CacheCipher): Promise<void> {
  await saveCache({
    path: fx.cachePath,
    backend: cipher,
    previous: null,
    fetched: [{ mapping: MAPPING, value: Buffer.from(value) }],
    prune: true,
  });
}

async function withKeyfile<T>(use: (backend: CacheBackend) => Promise<T>): Promise<T> {
  const backend = createKeyfileCacheBackend({ path: fx.keyFile });
  await backend.open();
  try {
    return await use(backend);
  } finally {
    await backend.close();
  }
}

const startServe = (env: Record<string, string> = {}): Serve => fx.start({ env });

/** The built CLI once, as an operator runs it. */
async function psi(args: string[], env: Record<string, string> = {}) {
  try {
    const { stdout, stderr } = await promisify(execFile)(
      process.execPath,
      [CLI, ...args, "-c", fx.config],
      {
        env: { PATH: process.env["PATH"] ?? "/usr/bin:/bin", HOME: join(fx.dir, "home"), ...env },
      },
    );
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

const lookup = async (id: string) => unixRequest(fx.socket, { path: `/lookup/${id}` });

/** Waits for a log record that matches, logged after the first `after` records. */
async function nextRecord(
  serve: Serve,
  after: number,
  predicate: (r: LogRecord) => boolean,
  what: string,
): Promise<LogRecord> {
  const later = () => serve.records().slice(after).find(predicate);
  await serve.waitFor(() => later() !== undefined, what);
  return later() as LogRecord;
}

function rssKb(pid: number): Promise<number> {
  return readFile(`/proc/${pid}/status`, "utf8").then((text) =>
    Number(/VmRSS:\s+(\d+)/.exec(text)?.[1]),
  );
}

beforeEach(async () => {
  await initKeyfile({ path: fx.keyFile });
});

describe("hostile mapping files", () => {
  it("a FIFO, a symlink to /dev/zero, a sparse 2 GB file, a directory: corrupt_mapping for that lookup only", async () => {
    await writeConfig(fx.keyfileCache());
    await withKeyfile((backend) => writeCache("cached-hunter2", backend));
    execFileSync("mkfifo", [join(fx.stateDir, "fifo")]);
    await symlink("/dev/zero", join(fx.stateDir, "zero"));
    await writeFile(join(fx.stateDir, "sparse"), "");
    await truncate(join(fx.stateDir, "sparse"), 2 * 1024 ** 3);
    await mkdir(join(fx.stateDir, "adir"));
    const serve = startServe();
    await serve.waitFor((r) => r.event === "listen", "Listening on");
    // All at once: before, a FIFO blocked every request (/healthz too) until a writer came,
    // /dev/zero ran serve out of memory, the sparse file froze it for half a minute.
    const answers = await Promise.all([
      lookup("fifo"),
      lookup("zero"),
      lookup("sparse"),
      lookup("adir"),
      unixRequest(fx.socket, { path: "/healthz" }),
      lookup("id1"),
    ]);
    const [fifo, zero, sparse, adir, healthz, good] = answers;
    for (const [answer, detail] of [
      [fifo, "is a FIFO"],
      [zero, "is a symbolic link"],
      [sparse, "larger than 1048576 bytes"],
      [adir, "is a directory"],
    ] as const) {
      expect(answer?.status).toBe(500);
      expect(JSON.parse(answer?.text ?? "{}")).toMatchObject({
        error: "corrupt_mapping",
        detail: expect.stringContaining(detail),
      });
    }
    expect(healthz?.status).toBe(200);
    expect(good?.text).toBe("cached-hunter2");
    // nothing was read into memory
    expect(await rssKb(serve.child.pid!)).toBeLessThan(256 * 1024);
    const warnings = serve
      .records()
      .filter((r) => r.outcome === "corrupt_mapping" && r.level === "warn");
    expect(warnings.map((r) => r["code"]).sort()).toEqual([
      "fs.not_regular",
      "fs.not_regular",
      "fs.symlink",
      "fs.too_large",
    ]);
    // a good file in place of the FIFO is served
    await rm(join(fx.stateDir, "fifo"));
    await writeFile(join(fx.stateDir, "fifo"), JSON.stringify(MAPPING), { mode: 0o600 });
    expect((await lookup("fifo")).text).toBe("cached-hunter2");
    serve.child.kill("SIGTERM");
    expect(await serve.exited).toEqual({ code: 0, signal: null });
  });
});

describe("hostile files in place of cache.enc", () => {
  it("a FIFO, /dev/zero, then no file: warnings, lookups answer from memory, a good file recovers, SIGTERM exits", async () => {
    await writeConfig(fx.keyfileCache());
    await withKeyfile((backend) => writeCache("first", backend));
    const serve = startServe();
    await serve.waitFor((r) => r.event === "listen", "Listening on");
    expect((await lookup("id1")).text).toBe("first");
    // Infisical is down: only the cache in memory can answer
    await fx.fake.down();
    // each replaces cache.enc in one rename, as an attacker with write access to state_dir can
    const planted = join(fx.stateDir, "planted");
    const steps: Array<[string, () => Promise<void>, string, string]> = [
      [
        "a FIFO",
        async () => {
          execFileSync("mkfifo", [planted]);
          await rename(planted, fx.cachePath);
        },
        "cache.reload_failed",
        "fs.not_regular",
      ],
      [
        "/dev/zero",
        async () => {
          await symlink("/dev/zero", planted);
          await rename(planted, fx.cachePath);
        },
        "cache.reload_failed",
        "fs.symlink",
      ],
      ["no file", () => unlink(fx.cachePath), "cache.missing", ""],
    ];
    for (const [what, plant, event, code] of steps) {
      const mark = serve.records().length;
      await plant();
      const warning = await nextRecord(
        serve,
        mark,
        (r) => r.event === event,
        `${event} for ${what}`,
      );
      expect(warning.level).toBe("warn");
      if (code !== "") expect(warning["code"]).toBe(code);
      const [hit, healthz] = await Promise.all([
        lookup("id1"),
        unixRequest(fx.socket, { path: "/healthz" }),
      ]);
      expect([what, hit.status, hit.text]).toEqual([what, 200, "first"]);
      expect(healthz.status).toBe(200);
    }
    // putting a good file back recovers
    const mark = serve.records().length;
    await withKeyfile((backend) => writeCache("second", backend));
    await nextRecord(serve, mark, (r) => r.event === "cache.reload", "the reload");
    expect((await lookup("id1")).text).toBe("second");
    await fx.fake.up();
    serve.child.kill("SIGTERM");
    expect(await serve.exited).toEqual({ code: 0, signal: null });
  });

  it("refuses a cache.enc older than the loaded one; a restart loads it on purpose", async () => {
    await writeConfig(fx.keyfileCache());
    await withKeyfile((backend) =>
      saveCache({
        path: fx.cachePath,
        backend,
        previous: null,
        fetched: [{ mapping: MAPPING, value: Buffer.from("rotated-away") }],
        prune: true,
        now: () => Date.now() - 3600_000,
      }),
    );
    const old = await readFile(fx.cachePath);
    await withKeyfile((backend) => writeCache("current", backend));
    const serve = startServe();
    await serve.waitFor((r) => r.event === "listen", "Listening on");
    const mark = serve.records().length;
    await writeFileAtomic(fx.cachePath, old, { mode: 0o600 });
    const warning = await nextRecord(
      serve,
      mark,
      (r) => r.event === "cache.reload_failed",
      "the rollback warning",
    );
    expect(warning).toMatchObject({ level: "warn", code: "cache.rollback" });
    expect((await lookup("id1")).text).toBe("current");
    serve.child.kill("SIGTERM");
    expect((await serve.exited).code).toBe(0);
    const restarted = startServe();
    await restarted.waitFor((r) => r.event === "listen", "Listening on");
    expect((await lookup("id1")).text).toBe("rotated-away");
    restarted.child.kill("SIGTERM");
    expect((await restarted.exited).code).toBe(0);
  });
});

describe("a key change under a running serve", () => {
  it("keyfile: psi cache init --force then setup is read with the new key; a foreign key is degraded in /metrics and psi status", async () => {
    await writeConfig(fx.keyfileCache());
    await withKeyfile((backend) => writeCache("first", backend));
    const serve = startServe();
    await serve.waitFor((r) => r.event === "listen", "Listening on");
    expect((await lookup("id1")).text).toBe("first");
    const healthy = await psi(["status", "--socket", fx.socket]);
    expect(JSON.parse(healthy.stdout).problems).toEqual([]);
    expect(healthy.code).toBe(0);

    // the rotation our own hint suggests, then setup with the new key
    let mark = serve.records().length;
    const init = await psi(["cache", "init", "--backend", "keyfile", "--force"]);
    expect(init.code).toBe(0);
    await withKeyfile((backend) => writeCache("second", backend));
    await nextRecord(
      serve,
      mark,
      (r) => r.event === "cache.reload" && r["entries"] === 1,
      "the reload with the new key",
    );
    expect((await lookup("id1")).text).toBe("second");
    expect(serve.records().some((r) => r.event === "cache.reload_key")).toBe(true);

    // a file no key on this host decrypts: degraded, still serving what it has
    mark = serve.records().length;
    await writeCache("foreign", aesGcmBackend(randomBytes(32), 0x03));
    await nextRecord(serve, mark, (r) => r["degraded"] === true, "the degraded warning");
    expect((await unixRequest(fx.socket, { path: "/healthz" })).status).toBe(200);
    expect((await lookup("id1")).text).toBe("second");
    const metrics = (await unixRequest(fx.socket, { path: "/metrics" })).text;
    expect(metrics).toMatch(/^psi_cache_degraded\{reason="cache\.auth_failed: [^"]*"\} 1$/m);
    const degraded = await psi(["status", "--socket", fx.socket]);
    expect(degraded.code).toBe(1);
    const problem = JSON.parse(degraded.stdout).problems.find(
      (p: { code: string }) => p.code === "cache.degraded",
    );
    expect(problem.message).toBe(
      "cache.enc on disk cannot be decrypted by the running serve; restart it",
    );

    // the next good setup heals it
    mark = serve.records().length;
    await withKeyfile((backend) => writeCache("third", backend));
    await nextRecord(serve, mark, (r) => r.event === "cache.reload", "the healing reload");
    expect((await unixRequest(fx.socket, { path: "/metrics" })).text).toMatch(
      /^psi_cache_degraded 0$/m,
    );
    expect((await psi(["status", "--socket", fx.socket])).code).toBe(0);
    serve.child.kill("SIGTERM");
    expect((await serve.exited).code).toBe(0);
  });

  it("tpm: a new key in $CREDENTIALS_DIRECTORY/psi-cache-key is re-read", async () => {
    const credentials = join(fx.dir, "creds");
    await mkdir(credentials, { mode: 0o700 });
    const credential = join(credentials, "psi-cache-key");
    await writeFileAtomic(credential, randomBytes(32), { mode: 0o600 });
    await writeConfig(`cache: { enabled: true, backend: tpm, path: ${fx.cachePath} }`);
    const tpm = (): Promise<CacheBackend> => {
      const backend = createTpmCacheBackend({
        env: { CREDENTIALS_DIRECTORY: credentials },
        configDir: fx.dir,
      });
      return backend.open().then(() => backend);
    };
    const first = await tpm();
    await writeCache("first", first);
    await first.close();
    const serve = startServe({ CREDENTIALS_DIRECTORY: credentials });
    await serve.waitFor((r) => r.event === "listen", "Listening on");
    expect((await lookup("id1")).text).toBe("first");
    const mark = serve.records().length;
    await writeFileAtomic(credential, randomBytes(32), { mode: 0o600 });
    const second = await tpm();
    await writeCache("second", second);
    await second.close();
    await nextRecord(serve, mark, (r) => r.event === "cache.reload", "the reload");
    expect((await lookup("id1")).text).toBe("second");
    serve.child.kill("SIGTERM");
    expect((await serve.exited).code).toBe(0);
  });
});
