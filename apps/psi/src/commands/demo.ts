import { errorMessage, PsiError } from "@psi/core";
import { createLookupServer, type LookupServer } from "@psi/lookup-server";
import {
  type DemoHost,
  demoSocketPath,
  demoThroughPodman,
  getOnSocket,
  prepareDemoHost,
} from "@psi/ops";
import type { Command } from "commander";
import { type App, createApp } from "../app.js";
import { openServeCache } from "./serve.js";

// `psi demo` (SPEC §8.3, §14): @psi/ops prepares the demo host (directory, keyfile, sealed
// samples) and the Podman walkthrough; this file runs serve over it and narrates.

/** Shell words as a person would type them. */
function shellQuote(text: string): string {
  return /^[A-Za-z0-9_./@%+=:,-]+$/.test(text) ? text : `'${text.replace(/'/g, "'\\''")}'`;
}

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
      const socket = options.socket ?? demoSocketPath(app.env, app.uid);
      // Ctrl-C at any point ends the demo through the cleanup below, never mid-way.
      let onSignal: (() => void) | undefined;
      const interrupted = new Promise<void>((resolve) => {
        onSignal = () => resolve();
      });
      // SIGHUP too: closing the terminal must not leave the keyfile and sealed secrets behind.
      process.on("SIGINT", onSignal!);
      process.on("SIGTERM", onSignal!);
      process.on("SIGHUP", onSignal!);
      let host: DemoHost | undefined;
      let server: LookupServer | undefined;
      let closeProviders: (() => Promise<void>) | undefined;
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
        // PSI_* overrides and systemd credentials of the caller must not leak into the demo.
        const demoEnv = Object.fromEntries(
          Object.entries(app.env).filter(
            ([name]) => !name.startsWith("PSI_") && name !== "CREDENTIALS_DIRECTORY",
          ),
        );
        const demo = createApp(app.io, { ...demoEnv, PSI_CONFIG: configPath }, app.uid);
        demo.setGlobals(app.globals());
        const providers = await demo.openProviders();
        const { cache, backend: cacheBackend } = await openServeCache(
          demo,
          await demo.loadConfig(),
          demo.logger(),
        );
        closeProviders = async () => {
          await Promise.allSettled([...providers.values()].map((provider) => provider.close()));
          await cacheBackend?.close();
          // stop watching cache.enc before the directory goes
          cache?.close();
        };
        if (!providers.has("local")) {
          throw new PsiError(
            "demo.local_failed",
            "the demo's local provider did not open (see the log above)",
          );
        }
        server = createLookupServer({
          stateDir,
          providers,
          cache,
          logger: demo.logger(),
          metrics: true,
        });
        await server.listen({ path: socket });
        app.print(`3. psi serve is listening on ${socket}\n`);

        const first = samples[0]!;
        app.print("4. A lookup through the socket, as Podman's shell driver does it:");
        app.print(`   $ curl -sf --unix-socket ${socket} http://localhost/lookup/${first.name}`);
        const answer = await getOnSocket(socket, `/lookup/${first.name}`);
        if (answer.status !== 200) {
          throw new PsiError(
            "demo.lookup_failed",
            `the demo lookup answered ${answer.status}: ${answer.body}`,
          );
        }
        app.print(`   ${answer.body}\n`);

        if (options.podman) {
          app.print(
            "5. The same through Podman (shell driver, storage isolated in the demo directory):",
          );
          const podmanSecret = "psi-demo-db-password";
          const result = await demoThroughPodman({
            dir,
            socket,
            mapping: samples[1]!.mapping,
            name: podmanSecret,
            env: app.env,
            onCommand: (line) => app.print(`   $ ${line}`),
          }).catch((error: unknown) => ({ skipped: errorMessage(error), value: undefined }));
          if (result.value !== undefined) {
            app.print(
              `   Podman received for /run/secrets/db: ${result.value.toString("utf8")} (${result.value.length} bytes)\n`,
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
        process.off("SIGINT", onSignal!);
        process.off("SIGTERM", onSignal!);
        process.off("SIGHUP", onSignal!);
        await server?.close();
        await closeProviders?.();
        // The server removed its socket; the directory holds everything else.
        await host?.remove();
      }
    });
}
