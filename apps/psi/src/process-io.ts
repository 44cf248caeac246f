import { fstatSync, type Stats } from "node:fs";
import { writeAllSync } from "@psi/core";
import type { Io } from "./app.js";

// The process's own stdout and stderr for a CLI run. On a terminal they are Node's
// streams. On a file, a pipe or a socket (a script, Podman, systemd's journal) they are a
// plain synchronous writer on the descriptor: Node's stream writes synchronously there on
// Linux too, and building one loads Node's stream and socket machinery, ~3 ms of every
// `psi cache status` for each of the two. Each is made on first use: a command that never
// logs never touches stderr.

/** A write-only stream on a descriptor that is not a terminal. */
interface FdWriter {
  readonly fd: number;
  readonly isTTY: false;
  write(chunk: string | Uint8Array): boolean;
}

/**
 * A writer on `fd` when it is a regular file, a FIFO or a socket; undefined otherwise (a
 * terminal, or a character device such as /dev/null: Node's stream knows those). A reader
 * that went away (EPIPE: `psi ... | head`) ends the run quietly, as other Unix tools do.
 */
export function fdWriter(fd: number): FdWriter | undefined {
  let kind: Stats;
  try {
    kind = fstatSync(fd);
  } catch {
    return undefined; // closed (EBADF): Node's stream reports that
  }
  if (!kind.isFile() && !kind.isFIFO() && !kind.isSocket()) return undefined;
  return {
    fd,
    isTTY: false,
    write(chunk) {
      try {
        writeAllSync(fd, chunk);
      } catch (error) {
        endQuietlyOnEpipe(error);
      }
      return true;
    },
  };
}

/** A reader that went away ends the run with its exit code so far; any other error is thrown. */
function endQuietlyOnEpipe(error: unknown): never {
  if ((error as NodeJS.ErrnoException).code === "EPIPE") process.exit(process.exitCode ?? 0);
  throw error;
}

/** Node's stream, ending the run quietly on EPIPE instead of with a stack trace. */
function quietOnEpipe(stream: NodeJS.WriteStream): NodeJS.WriteStream {
  if (stream.listenerCount("error") === 0) stream.on("error", endQuietlyOnEpipe);
  return stream;
}

/** The Io of the psi process: stdout and stderr as above, stdin as Node's stream. */
export function processIo(): Io {
  let stdout: Io["stdout"] | undefined;
  let stderr: Io["stderr"] | undefined;
  return {
    get stdout() {
      stdout ??= fdWriter(1) ?? quietOnEpipe(process.stdout);
      return stdout;
    },
    get stderr() {
      stderr ??= fdWriter(2) ?? quietOnEpipe(process.stderr);
      return stderr;
    },
    get stdin() {
      return process.stdin;
    },
  };
}
