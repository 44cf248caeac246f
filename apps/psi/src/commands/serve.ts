import { startServe } from "@psi/lookup-server";
import type { Command } from "commander";
import type { App } from "../app.js";

/** SIGTERM or SIGINT, whichever comes first, reported once on `stop`. */
function waitForSignal(stop: AbortController): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const stopped = (signal: NodeJS.Signals) => {
      process.off("SIGTERM", stopped);
      process.off("SIGINT", stopped);
      stop.abort(signal);
      resolve(signal);
    };
    process.on("SIGTERM", stopped);
    process.on("SIGINT", stopped);
  });
}

/** `psi serve`: @psi/lookup-server's startServe, closed on SIGTERM/SIGINT, reloaded on SIGHUP. */
export async function runServe(app: App, options: { socket?: string }): Promise<void> {
  // Handlers first: `systemctl stop` during startup (opening an HSM can take seconds)
  // must still end in a clean exit 0, not death by the default signal action.
  const stop = new AbortController();
  const stopping = waitForSignal(stop);
  // SIGHUP's default action kills: replace it from the start; it reloads once listening.
  let onHangup: (() => Promise<void>) | undefined;
  let reloads = Promise.resolve();
  const hangup = () => {
    if (onHangup) reloads = reloads.then(onHangup).catch(() => {});
  };
  process.on("SIGHUP", hangup);
  try {
    const serve = await startServe({
      loadConfig: () => app.loadConfig(),
      env: app.env,
      uid: app.uid,
      logger: app.logger(),
      socket: options.socket,
      openProviders: () => app.openProviders(),
      openCacheBackend: () => app.openCacheBackend(),
      signal: stop.signal,
    });
    if (serve === undefined) return;
    onHangup = serve.reload;
    await serve.close(await stopping);
  } finally {
    process.off("SIGHUP", hangup);
    await reloads;
  }
}

/** `psi serve [--socket PATH]` (SPEC §4, §11). */
export function registerServe(program: Command, app: App): void {
  program
    .command("serve")
    .description("run the lookup service Podman's shell driver calls (until SIGTERM/SIGINT)")
    .option(
      "--socket <path>",
      "socket to listen on (env PSI_SOCKET; default: the scope's socket); ignored under socket activation",
    )
    .action(async (options: { socket?: string }) => {
      await runServe(app, options);
    });
}
