import type { Scope, ScopePaths } from "@psi/core";
import type { Command } from "commander";
import type { App } from "./app.js";
import { podmanSocketOption } from "./options.js";

/** A value sealed by a store command, and what its report adds. */
export interface Sealed {
  mapping: Uint8Array;
  /**
   * The configuration's scope and paths: state_dir, where the shell driver's store writes
   * the mapping, and the scope's Podman socket.
   */
  where: { scope: Scope; paths: ScopePaths };
  /** Fields after name, id, mapping and stored in the JSON report. */
  json?: Record<string, unknown>;
  /** The line printed once Podman holds the secret. */
  text: (id: string) => string;
}

/**
 * `psi local store NAME` and `psi nitrokeyhsm store NAME`: `seal` reads and seals stdin;
 * the mapping is then registered as Podman secret NAME through the Podman API (Podman
 * hands it to the shell driver's store), or printed with `--mapping-only`.
 */
export function addStoreCommand(
  group: Command,
  app: App,
  description: string,
  seal: (name: string) => Promise<Sealed>,
): void {
  group
    .command("store")
    .description(description)
    .argument("<name>", "Podman secret name")
    .option("--mapping-only", "print the mapping instead of registering it with Podman")
    .addOption(podmanSocketOption())
    .action(async (name: string, options: { mappingOnly?: boolean; podmanSocket?: string }) => {
      const { mapping, where, json, text } = await seal(name);
      if (options.mappingOnly) {
        app.io.stdout.write(mapping);
        if (app.io.stdout.isTTY) app.io.stdout.write("\n");
        return;
      }
      const { registerSealedSecret } = await import("@psi/ops");
      const { id, mappingFile, stored } = await registerSealedSecret({
        name,
        mapping,
        stateDir: where.paths.stateDir,
        scope: where.scope,
        defaultPodmanSocket: where.paths.podmanSocket,
        podmanSocket: options.podmanSocket,
        env: app.env,
        logger: app.logger(),
        event: `${group.name()}.store`,
      });
      app.output({ name, id, mapping: mappingFile, stored, ...json }, () => text(id));
    });
}
