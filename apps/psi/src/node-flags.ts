// Node opens its inspector (unauthenticated, on 127.0.0.1:9229) when it receives SIGUSR1,
// and a JS listener does not stop it: only `--disable-sigusr1` does (SPEC §13). The
// published bin's shebang passes the flag; this covers `node dist/cli.js serve` and other
// ways of starting the entry without it. serve also runs with V8's memory flags
// (@psi/unitgen's NODE_FLAGS.serve, the same list the units and the image pass), which
// only the command line can set.

import { commandOf } from "./argv.js";

const FLAG = "--disable-sigusr1";
/** Commands that stay up, holding secrets in memory: the ones worth an exec. */
const LONG_RUNNING = new Set(["serve", "demo"]);
/**
 * Whether Node started with `flag`, with any value or negated (`--max-semi-space-size=8`
 * counts for `--max-semi-space-size=1`, `--concurrent-recompilation` for
 * `--no-concurrent-recompilation` and the other way round): an operator's own choice of a
 * V8 setting is kept. `--disable-sigusr1` is the exception: only the flag itself counts,
 * and the last of it and `--no-disable-sigusr1` wins. `given` defaults to NODE_OPTIONS
 * (which execArgv does not show) followed by the command line, which Node lets win.
 */
export function hasFlag(flag: string, given: readonly string[] = nodeArgs()): boolean {
  const bare = (flag.split("=")[0] as string).replace(/^--no-/, "--");
  const negated = `--no-${bare.slice(2)}`;
  if (flag === FLAG) return given.findLast((arg) => arg === FLAG || arg === negated) === FLAG;
  return given.some((arg) => arg === bare || arg === negated || arg.startsWith(`${bare}=`));
}

/** The Node options this process started with: its command line's last, as Node reads them. */
function nodeArgs(): string[] {
  return [...(process.env["NODE_OPTIONS"] ?? "").split(/\s+/), ...process.execArgv];
}

/** The Node flags a command must run with: serve's full list, `--disable-sigusr1` for demo. */
async function requiredFlags(command: string | undefined): Promise<readonly string[]> {
  if (command === "serve") return (await import("@psi/unitgen/exec")).NODE_FLAGS.serve;
  return LONG_RUNNING.has(command ?? "") ? [FLAG] : [];
}

/** Descriptors systemd passed to this very process (sd_listen_fds(3)). */
function listenFds(): number[] {
  if (process.env["LISTEN_PID"] !== String(process.pid)) return [];
  const count = Number.parseInt(process.env["LISTEN_FDS"] ?? "", 10);
  return Number.isInteger(count) && count > 0 ? Array.from({ length: count }, (_, i) => 3 + i) : [];
}

/**
 * Re-executes this process with the Node flags a long-running command needs
 * (`--disable-sigusr1`; for serve also its memory flags) when it started without them.
 * execve keeps the PID (socket activation's LISTEN_PID, sd_notify, the caller's `wait`),
 * the environment and, once their close-on-exec flag is cleared, the sockets systemd
 * passed; short commands pay nothing, and units and the image pass the flags themselves.
 */
export async function ensureNodeFlags(argv: readonly string[] = process.argv): Promise<void> {
  const required = await requiredFlags(commandOf(argv.slice(2)));
  if (required.length === 0) return;
  const given = nodeArgs();
  const missing = required.filter((flag) => !hasFlag(flag, given));
  if (missing.length === 0) return;
  // process.execve exists from Node 22.15 (engines asks for 22.18); not in worker threads.
  if (typeof process.execve !== "function") return;
  const fds = listenFds();
  if (fds.length > 0) {
    try {
      await (await import("@psi/lookup-server")).keepAcrossExec(fds);
    } catch (error) {
      // Losing systemd's sockets would break every lookup: run on, and say why.
      process.stderr.write(
        `psi: warning: cannot keep the activated sockets across a re-exec (${String(error)}); ` +
          `running without ${missing.join(" ")}: start Node with them\n`,
      );
      return;
    }
  }
  process.execve(
    process.execPath,
    // The added flags go last, so they win over a `--no-disable-sigusr1` given before.
    [process.execPath, ...process.execArgv, ...missing, ...argv.slice(1)],
    process.env,
  );
}
