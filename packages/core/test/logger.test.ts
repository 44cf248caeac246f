import { spawnSync } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import {
  createLogger,
  humanTime,
  isLogLevel,
  type LogStream,
  PsiError,
  parseLogLevel,
} from "../src/index.js";
import { tempDir } from "./helpers/tmp.js";

const NOW = new Date("2026-04-08T10:15:30.123Z");

function sink(isTTY?: boolean): LogStream & { lines: string[]; writes: number } {
  const out = {
    lines: [] as string[],
    writes: 0,
    write(chunk: string) {
      out.writes++;
      out.lines.push(chunk);
      return true;
    },
    ...(isTTY === undefined ? {} : { isTTY }),
  };
  return out;
}

describe("JSON lines", () => {
  it("writes time, level, msg, event, then the fields, one whole line per write", () => {
    const stream = sink();
    const logger = createLogger({ level: "debug", format: "json", stream, clock: () => NOW });
    logger.info("secret resolved", {
      event: "lookup",
      secret_id: "abc123",
      provider: "infisical",
      outcome: "hit",
    });
    expect(stream.lines).toEqual([
      '{"time":"2026-04-08T10:15:30.123Z","level":"info","msg":"secret resolved","event":"lookup","secret_id":"abc123","provider":"infisical","outcome":"hit"}\n',
    ]);
    expect(stream.writes).toBe(1);
  });

  it("omits event when there is none and keeps its own keys from being overridden", () => {
    const stream = sink();
    const logger = createLogger({ level: "info", format: "json", stream, clock: () => NOW });
    logger.warn("careful", { level: "fake", msg: "fake", time: "fake", n: 1 });
    expect(JSON.parse(stream.lines[0] ?? "")).toEqual({
      time: "2026-04-08T10:15:30.123Z",
      level: "warn",
      msg: "careful",
      level_field: "fake",
      msg_field: "fake",
      time_field: "fake",
      n: 1,
    });
  });

  it("turns errors into their message, bytes into a length, and survives odd values", () => {
    const stream = sink();
    const logger = createLogger({ level: "info", format: "json", stream, clock: () => NOW });
    const circular: Record<string, unknown> = { a: 1 };
    circular["self"] = circular;
    logger.error("failed", {
      event: "provider.error",
      error: new PsiError("provider.unreachable", "cannot reach Infisical at http://x"),
      value: Buffer.from("hunter2"),
      big: 10n,
      nan: Number.NaN,
      when: new Date(0),
      nested: circular,
      list: new Set(["x"]),
      fn: () => 1,
      missing: undefined,
    });
    const line = stream.lines[0] ?? "";
    expect(line).not.toContain("hunter2");
    expect(JSON.parse(line)).toEqual({
      time: "2026-04-08T10:15:30.123Z",
      level: "error",
      msg: "failed",
      event: "provider.error",
      error: "cannot reach Infisical at http://x",
      value: "<7 bytes>",
      big: "10",
      nan: "NaN",
      when: "1970-01-01T00:00:00.000Z",
      nested: { a: 1, self: "[Circular]" },
      list: ["x"],
    });
  });

  it("is the default when the stream is not a TTY", () => {
    const stream = sink(false);
    createLogger({ level: "info", stream, clock: () => NOW }).info("hello");
    expect(stream.lines).toEqual([
      '{"time":"2026-04-08T10:15:30.123Z","level":"info","msg":"hello"}\n',
    ]);
  });
});

describe("human lines", () => {
  it("are the default on a TTY: local time, level, message, event, key=value", () => {
    const stream = sink(true);
    const logger = createLogger({ level: "info", stream, clock: () => NOW });
    logger.warn("provider failed to open", {
      event: "provider.open_failed",
      provider: "nitrokeyhsm",
      error: "no token in slot 0",
      n: 3,
    });
    expect(stream.lines).toEqual([
      `${humanTime(NOW)} WARN  provider failed to open [provider.open_failed] provider=nitrokeyhsm error="no token in slot 0" n=3\n`,
    ]);
  });

  it("humanTime is HH:MM:SS.mmm in local time", () => {
    const date = new Date(2026, 0, 2, 3, 4, 5, 6);
    expect(humanTime(date)).toBe("03:04:05.006");
  });

  it("keeps a multi-line message on one record by indenting it", () => {
    const stream = sink();
    createLogger({ level: "info", format: "human", stream, clock: () => NOW }).info("a\nb");
    expect(stream.lines).toEqual([`${humanTime(NOW)} INFO  a\n  b\n`]);
  });
});

describe("levels and children", () => {
  it("writes only lines at or above the level", () => {
    const stream = sink();
    const logger = createLogger({ level: "warn", format: "json", stream, clock: () => NOW });
    logger.debug("d");
    logger.info("i");
    logger.warn("w");
    logger.error("e");
    expect(stream.lines.map((l) => JSON.parse(l).msg)).toEqual(["w", "e"]);
    expect(logger.enabled("info")).toBe(false);
    expect(logger.enabled("warn")).toBe(true);
    expect(logger.enabled("error")).toBe(true);
  });

  it("debug writes everything, silent nothing", () => {
    const loud = sink();
    const all = createLogger({ level: "debug", format: "json", stream: loud });
    for (const level of ["debug", "info", "warn", "error"] as const) all[level](level);
    expect(loud.lines).toHaveLength(4);
    const quiet = sink();
    const none = createLogger({ level: "silent", stream: quiet });
    none.error("x");
    expect(quiet.lines).toEqual([]);
    expect(none.enabled("error")).toBe(false);
  });

  it("child() adds bindings to every line, fields win over bindings", () => {
    const stream = sink();
    const logger = createLogger({
      level: "info",
      format: "json",
      stream,
      clock: () => NOW,
      bindings: { pid: 7 },
    });
    const child = logger
      .child({ provider: "infisical", event: "setup" })
      .child({ workload: "myapp" });
    child.info("fetched", { count: 3 });
    child.info("done", { event: "setup.done", workload: "other" });
    logger.info("parent");
    expect(stream.lines.map((l) => JSON.parse(l))).toEqual([
      {
        time: NOW.toISOString(),
        level: "info",
        msg: "fetched",
        event: "setup",
        pid: 7,
        provider: "infisical",
        workload: "myapp",
        count: 3,
      },
      {
        time: NOW.toISOString(),
        level: "info",
        msg: "done",
        event: "setup.done",
        pid: 7,
        provider: "infisical",
        workload: "other",
      },
      { time: NOW.toISOString(), level: "info", msg: "parent", pid: 7 },
    ]);
    expect(child.enabled("debug")).toBe(false);
  });

  it("a stream that throws never breaks the caller", () => {
    const logger = createLogger({
      level: "info",
      stream: {
        write() {
          throw new Error("EPIPE");
        },
      },
    });
    expect(() => logger.error("x")).not.toThrow();
  });

  it("isLogLevel accepts the four level names only", () => {
    expect(["debug", "info", "warn", "error"].every(isLogLevel)).toBe(true);
    expect(isLogLevel("silent")).toBe(false);
    expect(isLogLevel("trace")).toBe(false);
  });
});

describe("process exit", () => {
  it("writes straight to the descriptor of a stream that has one", async () => {
    const dir = await tempDir();
    try {
      const file = join(dir.path, "log");
      const fd = openSync(file, "w");
      const stream = {
        fd,
        write(): boolean {
          throw new Error("the stream's buffered write must not be used");
        },
      };
      createLogger({ level: "info", stream, clock: () => NOW }).info("direct", { event: "x" });
      closeSync(fd);
      expect(await readFile(file, "utf8")).toBe(
        '{"time":"2026-04-08T10:15:30.123Z","level":"info","msg":"direct","event":"x"}\n',
      );
    } finally {
      await dir.cleanup();
    }
  });

  it("loses no line when the process exits right after logging to a pipe", () => {
    const hooks = fileURLToPath(new URL("./helpers/ts-hooks.mjs", import.meta.url));
    const logger = fileURLToPath(new URL("../src/logger.ts", import.meta.url));
    const script = `
      import { createLogger } from ${JSON.stringify(logger)};
      const log = createLogger({ level: "info", stream: process.stderr });
      for (let i = 0; i < 5000; i++) log.info("line " + i, { event: "test", i, pad: "x".repeat(200) });
      process.exit(0);
    `;
    const result = spawnSync(
      process.execPath,
      ["--import", hooks, "--input-type=module", "-e", script],
      {
        encoding: "utf8",
        maxBuffer: 64 * 1024 * 1024,
      },
    );
    expect(result.status).toBe(0);
    const lines = result.stderr.trimEnd().split("\n");
    expect(lines).toHaveLength(5000);
    expect(JSON.parse(lines[4999] ?? "")).toMatchObject({
      msg: "line 4999",
      event: "test",
      i: 4999,
    });
  });
});

describe("journald priorities and level names", () => {
  it("syslogPrefix starts each line with its priority, JSON and human alike", () => {
    for (const format of ["json", "human"] as const) {
      const stream = sink();
      const logger = createLogger({
        level: "debug",
        format,
        stream,
        clock: () => NOW,
        syslogPrefix: true,
      });
      logger.debug("d");
      logger.info("i");
      logger.warn("w");
      logger.error("e");
      expect(stream.lines.map((line) => line.slice(0, 3))).toEqual(["<7>", "<6>", "<4>", "<3>"]);
    }
    const plain = sink();
    createLogger({ level: "info", format: "json", stream: plain, clock: () => NOW }).warn("w");
    expect(plain.lines[0]!.startsWith("{")).toBe(true);
  });

  it("parseLogLevel takes the Python psi's (loguru) names in any case", () => {
    expect(
      ["DEBUG", "TRACE", "Info", "SUCCESS", "WARNING", "warn", "ERROR", "CRITICAL"].map(
        parseLogLevel,
      ),
    ).toEqual(["debug", "debug", "info", "info", "warn", "warn", "error", "error"]);
    expect(parseLogLevel("loud")).toBeUndefined();
  });
});
