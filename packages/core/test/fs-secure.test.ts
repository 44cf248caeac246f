import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { chmod, mkdir, readdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ensureDir, isPsiError, writeFileAtomic } from "../src/index.js";
import { onPath, requireTool, tempDir } from "./helpers/tmp.js";

const hooks = fileURLToPath(new URL("./helpers/ts-hooks.mjs", import.meta.url));
const fsSecure = fileURLToPath(new URL("../src/fs-secure.ts", import.meta.url));

let dir: { path: string; cleanup: () => Promise<void> };
beforeEach(async () => {
  dir = await tempDir();
});
afterEach(async () => {
  await dir.cleanup();
});

const modeOf = async (path: string) => (await stat(path)).mode & 0o7777;

/** Runs an ES module script with this package's TypeScript importable. */
function nodeScript(script: string, args: string[] = []): ChildProcess {
  return spawn(
    process.execPath,
    ["--import", hooks, "--input-type=module", "-e", script, ...args],
    {
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
}

const noStrace = requireTool(onPath("strace"), "strace", "strace");

interface Syscall {
  pid: string;
  name: string;
  args: string;
  result: number | undefined;
}

/** strace -f output as calls in the order they started (an unfinished call gets its result when resumed). */
function parseStrace(text: string): Syscall[] {
  const calls: Syscall[] = [];
  const pending = new Map<string, Syscall>();
  for (const line of text.split("\n")) {
    const resumed = /^(\d+)\s+<\.\.\. (\w+) resumed>.*\)\s+=\s+(-?\d+)/.exec(line);
    if (resumed) {
      const call = pending.get(`${resumed[1]}:${resumed[2]}`);
      if (call) call.result = Number(resumed[3]);
      continue;
    }
    const started = /^(\d+)\s+(\w+)\((.*)$/.exec(line);
    if (!started) continue;
    const [, pid, name, rest] = started as unknown as [string, string, string, string];
    const done = /\)\s+=\s+(-?\d+)/.exec(rest);
    const call: Syscall = { pid, name, args: rest, result: done ? Number(done[1]) : undefined };
    calls.push(call);
    if (!done) pending.set(`${pid}:${name}`, call);
  }
  return calls;
}

describe.skipIf(noStrace)("writeFileAtomic as the kernel sees it (strace)", () => {
  it("writes the temp file, fsyncs it, renames it over the target, then fsyncs the directory", async () => {
    const target = join(dir.path, "cache.enc");
    await writeFile(target, "old");
    const log = join(dir.path, "strace.log");
    const script = `import { writeFileAtomic } from ${JSON.stringify(fsSecure)};
await writeFileAtomic(process.argv[1], "payload-${"x".repeat(8)}");`;
    const child = spawn(
      "strace",
      [
        "-f",
        "-qq",
        "-e",
        "trace=openat,write,fsync,fdatasync,rename,renameat,renameat2",
        "-o",
        log,
        process.execPath,
        "--import",
        hooks,
        "--input-type=module",
        "-e",
        script,
        target,
      ],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    let stderr = "";
    child.stderr?.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const [code] = (await once(child, "close")) as [number];
    expect(code, stderr).toBe(0);
    expect(await readFile(target, "utf8")).toBe(`payload-${"x".repeat(8)}`);

    const calls = parseStrace(await readFile(log, "utf8"));
    const at = (predicate: (call: Syscall) => boolean, from = 0): number => {
      const index = calls.findIndex((call, position) => position >= from && predicate(call));
      expect(index, `no matching syscall after #${from}`).toBeGreaterThanOrEqual(0);
      return index;
    };
    const tempPrefix = join(dir.path, ".psi-");
    const create = at(
      (c) => c.name === "openat" && c.args.includes(`"${tempPrefix}`) && c.args.includes("O_CREAT"),
    );
    const tempFd = calls[create]!.result!;
    const tempPath = /"([^"]+)"/.exec(calls[create]!.args)![1]!;
    const write = at(
      (c) => c.name === "write" && c.args.startsWith(`${tempFd}, "payload-`),
      create,
    );
    const sync = at(
      (c) => (c.name === "fsync" || c.name === "fdatasync") && c.args.startsWith(`${tempFd})`),
      write,
    );
    const rename = at(
      (c) =>
        c.name.startsWith("rename") &&
        c.args.includes(`"${tempPath}"`) &&
        c.args.includes(`"${target}"`),
      sync,
    );
    const openDir = at(
      (c) =>
        c.name === "openat" && c.args.includes(`"${dir.path}"`) && c.args.includes("O_DIRECTORY"),
      rename,
    );
    const dirFd = calls[openDir]!.result!;
    at(
      (c) => (c.name === "fsync" || c.name === "fdatasync") && c.args.startsWith(`${dirFd})`),
      openDir,
    );
    // Nothing wrote the target in place.
    expect(
      calls.some(
        (c) => c.name === "openat" && c.args.includes(`"${target}"`) && c.args.includes("O_WRONLY"),
      ),
    ).toBe(false);
  });
});

describe("writeFileAtomic", () => {
  it("writes the content with mode 0600 by default", async () => {
    const file = join(dir.path, "secret");
    await writeFileAtomic(file, "value-1");
    expect(await readFile(file, "utf8")).toBe("value-1");
    expect(await modeOf(file)).toBe(0o600);
    await writeFileAtomic(file, new Uint8Array([0, 1, 2, 255]));
    expect([...(await readFile(file))]).toEqual([0, 1, 2, 255]);
    expect(await readdir(dir.path)).toEqual(["secret"]);
  });

  it("replaces a file of another mode with a new file of the requested mode", async () => {
    const file = join(dir.path, "unit.conf");
    await writeFile(file, "old", { mode: 0o644 });
    await chmod(file, 0o644);
    await writeFileAtomic(file, "new");
    expect(await modeOf(file)).toBe(0o600);
    await writeFileAtomic(file, "public", { mode: 0o644 });
    expect(await modeOf(file)).toBe(0o644);
    expect(await readFile(file, "utf8")).toBe("public");
  });

  it("gives exactly the requested mode whatever the umask", async () => {
    const previous = process.umask(0o277);
    try {
      await writeFileAtomic(join(dir.path, "a"), "x");
      await writeFileAtomic(join(dir.path, "b"), "x", { mode: 0o640 });
    } finally {
      process.umask(previous);
    }
    expect(await modeOf(join(dir.path, "a"))).toBe(0o600);
    expect(await modeOf(join(dir.path, "b"))).toBe(0o640);
  });

  it.each([0o000, 0o077])(
    "under umask %o a watcher never sees a file with another mode than 0600",
    async (umask) => {
      const watched = join(dir.path, "state");
      await mkdir(watched);
      // A separate process polls the directory as fast as it can and stops when it sees the
      // sentinel: the sentinel (0644 on purpose) proves that the watcher does see bad modes.
      const watcher = spawn(
        process.execPath,
        [
          "-e",
          `
        const fs = require("node:fs");
        const dir = process.argv[1];
        const bad = new Set();
        let temps = 0, looks = 0;
        const start = Date.now();
        process.stdout.write("ready\\n");
        while (Date.now() - start < 60000) {
          let names = [];
          try { names = fs.readdirSync(dir); } catch {}
          for (const name of names) {
            let mode;
            try { mode = fs.lstatSync(dir + "/" + name).mode & 0o7777; } catch { continue; }
            looks++;
            if (name.startsWith(".")) temps++;
            if (mode !== 0o600) bad.add(name.startsWith(".") ? "temp " + mode.toString(8) : name + " " + mode.toString(8));
          }
          if (bad.has("sentinel 644")) break;
        }
        process.stdout.write(JSON.stringify({ bad: [...bad], temps, looks }) + "\\n");
        `,
          watched,
        ],
        { stdio: ["ignore", "pipe", "inherit"] },
      );
      let output = "";
      watcher.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
        output += chunk;
      });
      while (!output.includes("ready\n") && watcher.exitCode === null) {
        await once(watcher.stdout as NodeJS.ReadableStream, "data");
      }

      const exited = once(watcher, "exit");
      try {
        const previous = process.umask(umask);
        try {
          const payload = Buffer.alloc(256 * 1024, 7);
          for (let i = 0; i < 150; i++)
            await writeFileAtomic(join(watched, `secret-${i % 3}`), payload);
        } finally {
          process.umask(previous);
        }
        const sentinel = join(watched, "sentinel");
        await writeFile(sentinel, "");
        await chmod(sentinel, 0o644);
        await exited;
      } finally {
        if (watcher.exitCode === null) watcher.kill("SIGKILL");
      }
      const report = JSON.parse(output.split("\n")[1] ?? "{}") as {
        bad: string[];
        temps: number;
        looks: number;
      };
      expect(report.bad).toEqual(["sentinel 644"]);
      expect(report.looks).toBeGreaterThan(0);
    },
  );

  it("leaves the old file and no temp file when the rename fails", async () => {
    const target = join(dir.path, "target");
    await mkdir(target);
    await writeFile(join(target, "inside"), "old");
    const error = await writeFileAtomic(target, "new").catch((e: unknown) => e);
    expect(isPsiError(error, "fs.write_failed")).toBe(true);
    expect((error as Error).message).toMatch(
      new RegExp(`^cannot write ${target}: E(ISDIR|NOTEMPTY)`),
    );
    expect((await readdir(dir.path)).sort()).toEqual(["target"]);
    expect(await readFile(join(target, "inside"), "utf8")).toBe("old");
  });

  it("fails clearly when the directory is missing", async () => {
    const file = join(dir.path, "missing", "file");
    const error = await writeFileAtomic(file, "x").catch((e: unknown) => e);
    expect(isPsiError(error, "fs.write_failed")).toBe(true);
    expect((error as { hint?: string }).hint).toBe(`create ${join(dir.path, "missing")} first`);
  });

  it("leaves the old file and no temp file when a write fails midway (file size limit)", async () => {
    const file = join(dir.path, "cache.enc");
    await writeFile(file, "old content", { mode: 0o600 });
    // RLIMIT_FSIZE of 1 KiB with SIGXFSZ ignored: the big write fails with EFBIG.
    const script = `
      import { writeFileAtomic } from ${JSON.stringify(fsSecure)};
      try {
        await writeFileAtomic(process.argv[1], Buffer.alloc(1024 * 1024, 1));
        console.log("written");
      } catch (error) {
        console.log(error.code + " " + error.message);
      }
    `;
    const result = spawnSync(
      "bash",
      [
        "-c",
        `trap '' XFSZ; ulimit -f 1; exec "$0" --import "$1" --input-type=module -e "$2" "$3"`,
        process.execPath,
        hooks,
        script,
        file,
      ],
      { encoding: "utf8" },
    );
    expect(result.stderr).toBe("");
    expect(result.stdout).toMatch(/^fs\.write_failed cannot write .*cache\.enc: EFBIG/);
    expect(await readFile(file, "utf8")).toBe("old content");
    expect(await readdir(dir.path)).toEqual(["cache.enc"]);
  });

  it("a writer killed with SIGKILL leaves the old or the new content, never a mix", async () => {
    const file = join(dir.path, "cache.enc");
    const size = 4 * 1024 * 1024;
    const initial = Buffer.alloc(size, "i");
    await writeFile(file, initial);
    const script = `
      import { writeFileAtomic } from ${JSON.stringify(fsSecure)};
      const a = Buffer.alloc(${size}, "a");
      const b = Buffer.alloc(${size}, "b");
      console.log("started");
      for (let i = 0; ; i++) await writeFileAtomic(process.argv[1], i % 2 ? a : b);
    `;
    const seen = new Set<string>();
    for (let round = 0; round < 12; round++) {
      const child = nodeScript(script, [file]);
      await once(child.stdout as NodeJS.ReadableStream, "data");
      await new Promise((done) => setTimeout(done, Math.floor(Math.random() * 60)));
      child.kill("SIGKILL");
      await once(child, "exit");
      const content = await readFile(file);
      expect(content.length).toBe(size);
      const first = String.fromCharCode(content[0] as number);
      expect(content.equals(Buffer.alloc(size, first))).toBe(true);
      seen.add(first);
    }
    // Killed temp files may stay behind; they start with "." so state_dir listings skip them.
    for (const name of await readdir(dir.path))
      expect(name === "cache.enc" || name.startsWith(".")).toBe(true);
    expect([...seen].every((c) => "iab".includes(c))).toBe(true);
  });
});

describe("ensureDir", () => {
  it("creates missing directories with mode 0700", async () => {
    const path = join(dir.path, "a", "b");
    await ensureDir(path);
    expect((await stat(path)).isDirectory()).toBe(true);
    expect(await modeOf(path)).toBe(0o700);
  });

  it("gives the requested mode whatever the umask, and leaves an existing directory alone", async () => {
    const previous = process.umask(0o277);
    try {
      await ensureDir(join(dir.path, "x"), 0o750);
    } finally {
      process.umask(previous);
    }
    expect(await modeOf(join(dir.path, "x"))).toBe(0o750);
    await chmod(join(dir.path, "x"), 0o755);
    await ensureDir(join(dir.path, "x"));
    expect(await modeOf(join(dir.path, "x"))).toBe(0o755);
  });

  it("refuses a path that is a file", async () => {
    const file = join(dir.path, "f");
    await writeFile(file, "");
    const error = await ensureDir(file).catch((e: unknown) => e);
    expect(isPsiError(error, "fs.mkdir_failed")).toBe(true);
    expect((error as Error).message).toMatch(new RegExp(`^cannot create directory ${file}: `));
  });
});
