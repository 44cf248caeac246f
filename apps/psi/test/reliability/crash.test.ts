import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, stat, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { readCacheFile, saveCache } from "@psi/cache";
import { createKeyfileCacheBackend, initKeyfile } from "@psi/cache-keyfile";
import type { CacheBackend } from "@psi/core";
import { cacheKey } from "@psi/envelope";
import { createLookupServer } from "@psi/lookup-server";
import { tempDir } from "@psi/testkit/tmp";
import { captureLogger, unixRequest } from "@psi/testkit/unix-http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// SPEC §6.5, §13 crash safety: a writer killed with SIGKILL at random points during cache
// saves (keyfile backend, a growing entry set) leaves a file that decrypts to the old or
// the new contents, never a mix. The writer is a real child process on the built packages
// (`pnpm exec turbo run build --filter=@psi/cli...` first).

const WRITER = fileURLToPath(new URL("./cache-writer.mjs", import.meta.url));
const BUILT = fileURLToPath(new URL("../../../../packages/cache/dist/index.js", import.meta.url));
const KILLS = 100;
/** Kill after "ready" plus a uniform random delay up to this (a few saves' worth). */
const MAX_DELAY_MS = 40;
const TEMP = /^\.psi-[0-9a-f]{16}\.tmp$/;

/** The same generations the writer saves. */
function generation(gen: number): { mapping: Record<string, unknown>; value: Buffer }[] {
  const fetched = [];
  for (let k = 0; k < 20 + gen; k++) {
    fetched.push({
      mapping: { provider: "infisical", project: "crash", path: "/p", key: `K${k}` },
      value: Buffer.from(`g${gen}:k${k}:${"v".repeat(64)}`),
    });
  }
  return fetched;
}

interface Round {
  child: ChildProcess;
  ready: Promise<void>;
  /** Last generation the writer reported saved (rename and directory fsync done). */
  acked(): number | undefined;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr(): string;
}

function startWriter(cachePath: string, keyFile: string, first: number): Round {
  const child = spawn(process.execPath, [WRITER, cachePath, keyFile, String(first)], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let acked: number | undefined;
  let stderr = "";
  let buffered = "";
  let onReady: () => void = () => {};
  const ready = new Promise<void>((resolve) => {
    onReady = resolve;
  });
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
    buffered += chunk;
    const lines = buffered.split("\n");
    buffered = lines.pop() ?? "";
    for (const line of lines) {
      if (line === "ready") onReady();
      const saved = /^saved (\d+)$/.exec(line);
      if (saved) acked = Number(saved[1]);
    }
  });
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on("exit", (code, signal) => resolve({ code, signal })),
  );
  // A writer that dies on its own must fail the test, not hang it.
  const died = exited.then(({ code }) => {
    if (code !== null) throw new Error(`the writer exited by itself (${code}): ${stderr}`);
  });
  return {
    child,
    ready: Promise.race([ready, died]) as Promise<void>,
    acked: () => acked,
    exited,
    stderr: () => stderr,
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("crash safety of cache saves (SIGKILL during 100 saves)", () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  let backend: CacheBackend;
  let cachePath: string;
  let stateDir: string;
  let keyFile: string;
  const running: ChildProcess[] = [];

  beforeAll(async () => {
    if (!existsSync(BUILT)) {
      throw new Error(`${BUILT} is missing: pnpm exec turbo run build --filter=@psi/cli... first`);
    }
    dir = await tempDir("psi-crash-");
    stateDir = join(dir.path, "state");
    cachePath = join(stateDir, "cache.enc");
    await mkdir(stateDir, { mode: 0o700 });
    // the key lives in the config dir, as in a real host; the cache in state_dir
    keyFile = join(dir.path, "etc", "cache.keyfile");
    await initKeyfile({ path: keyFile });
    backend = createKeyfileCacheBackend({ path: keyFile });
    await backend.open();
  });

  afterAll(async () => {
    for (const child of running) if (child.exitCode === null) child.kill("SIGKILL");
    await backend?.close();
    await dir?.cleanup();
  });

  /** Decrypts the file and says which generation it holds; fails on anything but a whole one. */
  async function generationOnDisk(): Promise<number> {
    const decoded = await readCacheFile({ path: cachePath, backend });
    if (!decoded) throw new Error("cache.enc is gone");
    const first = decoded.entries.get(
      cacheKey(decoded.hmacKey, { provider: "infisical", project: "crash", path: "/p", key: "K0" }),
    );
    const gen = Number(/^g(\d+):/.exec(Buffer.from(first ?? "").toString("utf8"))?.[1]);
    expect(Number.isInteger(gen), "K0 names its generation").toBe(true);
    const expected = new Map(
      generation(gen).map(({ mapping, value }) => [cacheKey(decoded.hmacKey, mapping), value]),
    );
    expect(decoded.entries.size).toBe(expected.size);
    for (const [key, value] of expected) {
      expect(Buffer.from(decoded.entries.get(key) ?? "").equals(value)).toBe(true);
    }
    return gen;
  }

  async function tempFiles(): Promise<string[]> {
    return (await readdir(stateDir)).filter((name) => name.startsWith("."));
  }

  it("leaves a decryptable old-or-new file after every kill", { timeout: 180_000 }, async () => {
    await saveCache({ path: cachePath, backend, prune: true, fetched: generation(0) });
    let onDisk = await generationOnDisk();
    let newAtKill = 0;
    let oldAtKill = 0;
    let tempAfterKill = 0;
    let saves = 0;
    for (let kill = 0; kill < KILLS; kill++) {
      const first = onDisk + 1;
      const round = startWriter(cachePath, keyFile, first);
      running.push(round.child);
      await round.ready;
      await sleep(Math.random() * MAX_DELAY_MS);
      round.child.kill("SIGKILL");
      const exit = await round.exited;
      expect(exit.signal, round.stderr()).toBe("SIGKILL");

      // The save in flight was acked + 1 (or `first`): the file holds that one or the one before.
      const acked = round.acked();
      const previous = acked ?? onDisk;
      const inFlight = (acked ?? onDisk) + 1;
      const gen = await generationOnDisk();
      expect([previous, inFlight], `kill ${kill}: acked ${acked}, on disk ${gen}`).toContain(gen);
      if (gen === inFlight) newAtKill++;
      else oldAtKill++;
      saves += acked === undefined ? 0 : acked - first + 1;
      onDisk = gen;

      const temps = await tempFiles();
      if (temps.length > tempAfterKill) tempAfterKill = temps.length;
      for (const name of temps) {
        // the writer's own temp files: dot names, 0600, never plaintext
        expect(name).toMatch(TEMP);
        const path = join(stateDir, name);
        expect((await stat(path)).mode & 0o777).toBe(0o600);
        expect((await readFile(path)).includes(Buffer.from(`g${inFlight}:k0:`))).toBe(false);
      }
    }
    console.log(
      `crash safety: ${KILLS} kills over ${saves} completed saves; ` +
        `${oldAtKill} left the previous generation, ${newAtKill} the one in flight; ` +
        `${tempAfterKill} temp files left behind (killed between create and rename)`,
    );
    expect(saves).toBeGreaterThanOrEqual(KILLS / 2);
    // Some kills must have landed inside a write (temp file created, not yet renamed),
    // or this test never exercised the interesting window.
    expect(tempAfterKill).toBeGreaterThan(0);
  });

  it("leftover temp files are never listed as secrets and do not disturb the next save", async () => {
    const leftovers = await tempFiles();
    expect(leftovers.length).toBeGreaterThan(0);
    expect(leftovers.length).toBeLessThanOrEqual(KILLS);
    // cache.enc lives in state_dir by default: a mapping beside the leftovers.
    const id = "0123456789abcdef012345678";
    await writeFile(
      join(stateDir, id),
      JSON.stringify({ provider: "infisical", project: "crash", path: "/p", key: "K0" }),
      { mode: 0o600 },
    );
    const { logger } = captureLogger("warn");
    const server = createLookupServer({ stateDir, providers: new Map(), logger });
    const socket = join(dir.path, "psi.sock");
    await server.listen({ path: socket });
    try {
      const listed = await unixRequest(socket, { path: "/list" });
      expect(listed.status).toBe(200);
      expect(listed.text.trim().split("\n")).toEqual([id]);
    } finally {
      await server.close();
    }
    const before = await generationOnDisk();
    const result = await saveCache({
      path: cachePath,
      backend,
      prune: true,
      fetched: generation(before + 1),
    });
    expect(result.freshHmacKey).toBe(false);
    expect(await generationOnDisk()).toBe(before + 1);
    // A save that completes adds no temp file of its own, and leaves recent leftovers
    // alone (they could belong to a write in flight in another process)...
    for (const name of await tempFiles()) expect(leftovers).toContain(name);
    expect((await tempFiles()).length).toBe(leftovers.length);
    // ...but sweeps the ones old enough to be a killed writer's.
    const old = new Date(Date.now() - 11 * 60 * 1000);
    for (const name of leftovers) await utimes(join(stateDir, name), old, old);
    await saveCache({ path: cachePath, backend, prune: true, fetched: generation(before + 2) });
    expect(await tempFiles()).toEqual([]);
    expect(await generationOnDisk()).toBe(before + 2);
  });
});
