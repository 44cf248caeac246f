// Node opens its inspector (unauthenticated, on 127.0.0.1:9229) when it receives SIGUSR1,
// and a JS listener does not stop it: only `--disable-sigusr1` does (SPEC §13). The
// published bin's shebang passes the flag; this covers `node dist/cli.js serve` and other
// ways of starting the entry without it.

const FLAG = "--disable-sigusr1";
/** Commands that stay up, holding secrets in memory: the ones worth an exec. */
const LONG_RUNNING = new Set(["serve", "demo"]);
/** Global options that take a value (src/main.ts): the word after them is no command. */
const WITH_VALUE = new Set(["-c", "--config", "--log-level"]);

/** The command word of a psi argument list (`serve` in `-c f serve --socket s`). */
export function commandOf(args: readonly string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--") return args[i + 1];
    if (!arg.startsWith("-")) return arg;
    if (WITH_VALUE.has(arg)) i++;
  }
  return undefined;
}

function signalDisabled(): boolean {
  if (process.execArgv.includes(FLAG)) return true;
  // NODE_OPTIONS accepts the flag too and does not show in execArgv.
  return (process.env["NODE_OPTIONS"] ?? "").split(/\s+/).includes(FLAG);
}

/** Descriptors systemd passed to this very process (sd_listen_fds(3)). */
function listenFds(): number[] {
  if (process.env["LISTEN_PID"] !== String(process.pid)) return [];
  const count = Number.parseInt(process.env["LISTEN_FDS"] ?? "", 10);
  return Number.isInteger(count) && count > 0 ? Array.from({ length: count }, (_, i) => 3 + i) : [];
}

/**
 * Re-executes this process with `--disable-sigusr1` when a long-running command started
 * without it. execve keeps the PID (socket activation's LISTEN_PID, sd_notify, the
 * caller's `wait`), the environment and, once their close-on-exec flag is cleared, the
 * sockets systemd passed; short commands pay nothing.
 */
export async function disableInspectorSignal(
  argv: readonly string[] = process.argv,
): Promise<void> {
  if (!LONG_RUNNING.has(commandOf(argv.slice(2)) ?? "") || signalDisabled()) return;
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
          `running without ${FLAG}: start Node with ${FLAG}\n`,
      );
      return;
    }
  }
  process.execve(
    process.execPath,
    [process.execPath, FLAG, ...process.execArgv, ...argv.slice(1)],
    process.env,
  );
}
