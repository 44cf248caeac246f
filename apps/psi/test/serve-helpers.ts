import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { type LogRecord, type UnixResponse, unixRequest } from "@psi/testkit/unix-http";

// Running the built CLI's `psi serve` as a real child process (signals, socket activation,
// process hardening): `pnpm exec turbo run build --filter=@psi/cli...` first.

/** The built CLI entry the tests spawn. */
export const CLI = fileURLToPath(new URL("../dist/cli.js", import.meta.url));

/** Throws (for a beforeAll) when the CLI has not been built. */
export function requireBuiltCli(): void {
  if (!existsSync(CLI))
    throw new Error(`${CLI} is missing: run pnpm exec turbo run build --filter=@psi/cli... first`);
}

/** One running `psi serve` and what it logged so far. */
export interface Serve {
  child: ChildProcess;
  socket: string;
  records(): LogRecord[];
  stderr(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  waitFor(predicate: (record: LogRecord) => boolean, what: string): Promise<LogRecord>;
}

/** The JSON log lines in `text` (serve logs JSON lines to stderr when it is not a TTY). */
export function parseRecords(text: string): LogRecord[] {
  return text
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as LogRecord);
}

/** How to start one `psi serve`. */
export interface SpawnServeOptions {
  /** `-c <config>`. */
  config: string;
  /** The socket the returned {@link Serve} reports (pass `--socket` in `args` to choose it). */
  socket: string;
  /** HOME of the child. */
  home: string;
  /** Arguments after `serve -c <config>`. */
  args?: string[];
  /** Extra environment on top of PATH and HOME (the child sees nothing else). */
  env?: Record<string, string>;
  /** A wrapper command in front of node (e.g. systemd-socket-activate). */
  command?: string[];
  /** Run as this uid/gid. */
  uid?: number;
  /** Execute the built file itself (its shebang picks Node and its flags) instead of `node <file>`. */
  direct?: boolean;
}

/** Spawns `node dist/cli.js serve -c <config> ...args` (or `dist/cli.js ...`) with a minimal environment. */
export function spawnServe(options: SpawnServeOptions): Serve {
  const argv = [
    ...(options.command ?? []),
    ...(options.direct ? [] : [process.execPath]),
    CLI,
    "serve",
    "-c",
    options.config,
    ...(options.args ?? []),
  ];
  const child = spawn(argv[0]!, argv.slice(1), {
    stdio: ["ignore", "pipe", "pipe"],
    env: {
      PATH: process.env["PATH"] ?? "/usr/bin:/bin",
      HOME: options.home,
      ...options.env,
    },
    ...(options.uid === undefined ? {} : { uid: options.uid, gid: options.uid }),
  });
  let stderr = "";
  const waiters: Array<() => void> = [];
  child.stderr!.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
    for (const wake of waiters.splice(0)) wake();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on("exit", (code, signal) => {
      for (const wake of waiters.splice(0)) wake();
      resolve({ code, signal });
    }),
  );
  return {
    child,
    socket: options.socket,
    exited,
    stderr: () => stderr,
    records: () => parseRecords(stderr),
    async waitFor(predicate, what) {
      const deadline = Date.now() + 20_000;
      for (;;) {
        const found = parseRecords(stderr).find(predicate);
        if (found) return found;
        if (child.exitCode !== null || Date.now() > deadline) {
          throw new Error(`psi serve never logged ${what} (exit ${child.exitCode}):\n${stderr}`);
        }
        await new Promise<void>((resolve) => {
          waiters.push(resolve);
          setTimeout(resolve, 200);
        });
      }
    },
  };
}

/** SIGKILLs each child in `running` that is still alive, and empties the list. */
export function killRunning(running: ChildProcess[]): void {
  for (const child of running.splice(0))
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
}

/**
 * The first request on a socket systemd-socket-activate holds: it binds before it listens,
 * so a connect is refused (or the file is missing) for a moment; retried until accepted.
 * The kernel then queues the connection on the inherited socket until serve accepts it.
 */
export async function firstActivatedRequest(socket: string, path: string): Promise<UnixResponse> {
  for (;;) {
    try {
      return await unixRequest(socket, { path });
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== "ENOENT" && code !== "ECONNREFUSED") throw error;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }
}
