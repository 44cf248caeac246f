import {
  type DemoHost,
  type DemoServe,
  demoEnvironment,
  demoLookup,
  demoSocketPath,
  demoThroughPodman,
  prepareDemoHost,
  startDemoServe,
} from "@psi/ops";
import type { Command } from "commander";
import { type App, createApp } from "../app.js";
import { UsageError } from "../errors.js";

// `psi demo` (SPEC §8.3, §14): @psi/ops prepares the demo host (directory, keyfile, sealed
// samples) and the Podman walkthrough; this file runs serve over it and narrates.

/** Shell words as a person would type them. */
function shellQuote(text: string): string {
  return /^[A-Za-z0-9_./@%+=:,-]+$/.test(text) ? text : `'${text.replace(/'/g, "'\\''")}'`;
}

// SIGHUP too: closing the terminal must not leave the keyfile and sealed secrets behind.
const SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;

/** `psi demo [--socket PATH] [--once] [--no-podman]` (SPEC §8.3, §14). */
export function registerDemo(program: Command, app: App): void {
  program
    .command("demo")
    .description(
      "run a working psi serve with sample local secrets: no configuration, no external service " +
        "(everything lives in a temporary directory, removed on exit)",
    )
    .option(
      "--socket <path>",
      "socket to serve on (default: psi-demo.sock in the user-scope socket directory)",
    )
    .option("--once", "exit after the walkthrough instead of serving until Ctrl-C")
    .option("--no-podman", "skip the Podman part even when podman is installed")
    .action(async (options: { socket?: string; once?: boolean; podman: boolean }) => {
      // The demo serves its own configuration, written into its temporary directory: a
      // --config named here would be silently ignored, so it is refused instead, before
      // anything is created. PSI_CONFIG is ambient (a profile, an image) and is dropped
      // by demoEnvironment rather than refused.
      if (app.globals().config !== undefined) {
        throw new UsageError(
          "psi demo runs on its own configuration in a temporary directory; drop -c/--config",
        );
      }
      const socket = options.socket ?? demoSocketPath(app.env, app.uid);
      // Ctrl-C at any point ends the demo through the cleanup below, never mid-way.
      let onSignal: (() => void) | undefined;
      const interrupted = new Promise<void>((resolve) => {
        onSignal = () => resolve();
      });
      for (const signal of SIGNALS) process.on(signal, onSignal!);
      let host: DemoHost | undefined;
      let served: DemoServe | undefined;
      try {
        host = await prepareDemoHost();
        const { dir, configPath, stateDir, samples } = host;
        app.print(`PSI demo: everything lives in ${dir} and is removed on exit.\n`);
        app.print(
          `1. Configuration ${configPath}: the local provider, sealed with the keyfile cache backend.`,
        );

        app.print(
          `2. Sealed ${samples.length} sample secrets (AES-256-GCM) as mapping files in ${stateDir}:`,
        );
        for (const sample of samples) app.print(`     ${sample.name}`);

        // The demo's own serve: the same wiring as `psi serve`, on the demo configuration.
        const demo = createApp(app.io, demoEnvironment(app.env, configPath), app.uid);
        demo.setGlobals(app.globals());
        served = await startDemoServe({
          loaded: await demo.loadConfig(),
          socket,
          logger: demo.logger(),
          openProviders: () => demo.openProviders(),
          openCacheBackend: () => demo.openCacheBackend(),
        });
        app.print(`3. psi serve is listening on ${socket}\n`);

        const first = samples[0]!;
        app.print("4. A lookup through the socket, as Podman's shell driver does it:");
        app.print(`   $ curl -sf --unix-socket ${socket} http://localhost/lookup/${first.name}`);
        const answer = await demoLookup(socket, first.name);
        app.print(`   ${answer}\n`);

        if (options.podman) {
          app.print(
            "5. The same through Podman (shell driver, storage isolated in the demo directory):",
          );
          const result = await demoThroughPodman({
            host,
            socket,
            env: app.env,
            onCommand: (line) => app.print(`   $ ${line}`),
          });
          if (result.value !== undefined) {
            app.print(
              `   Podman received for ${result.target}: ${result.value.toString("utf8")} (${result.value.length} bytes)\n`,
            );
          } else {
            app.print(`   (skipped: ${result.skipped})\n`);
          }
        }

        const q = (text: string) => shellQuote(text);
        app.print("Try it yourself from another terminal:");
        app.print(`  curl -s --unix-socket ${q(socket)} http://localhost/healthz`);
        app.print(`  curl -s --unix-socket ${q(socket)} http://localhost/list`);
        for (const sample of samples) {
          app.print(`  curl -sf --unix-socket ${q(socket)} http://localhost/lookup/${sample.name}`);
        }
        app.print(
          `  printf %s 'my own value' | psi -c ${q(configPath)} local store --mapping-only mine \\\n` +
            `    | curl -sf --unix-socket ${q(socket)} -X POST --data-binary @- http://localhost/store/mine`,
        );
        app.print(`  curl -sf --unix-socket ${q(socket)} http://localhost/lookup/mine`);
        app.print(`  curl -s --unix-socket ${q(socket)} http://localhost/metrics`);

        if (options.once) return;
        app.print("\nServing until Ctrl-C.");
        await interrupted;
      } finally {
        for (const signal of SIGNALS) process.off(signal, onSignal!);
        await served?.close();
        // The server removed its socket; the directory holds everything else.
        await host?.remove();
      }
    });
}
