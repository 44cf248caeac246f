import type { Command } from "commander";
import type { App } from "../app.js";
import { publishMapping, readSecretInput } from "../store-secret.js";

/** `psi local store NAME` (SPEC §8.3, §11). */
export function registerLocal(program: Command, app: App): void {
  const local = program
    .command("local")
    .description("secrets sealed on this host with the cache backend's key");
  local
    .command("store")
    .description(
      "seal stdin as a local secret and register it as Podman secret NAME (shell driver); " +
        "with --mapping-only print the mapping for `podman secret create --driver shell NAME -`",
    )
    .argument("<name>", "Podman secret name")
    .option("--mapping-only", "print the mapping instead of registering it with Podman")
    .option(
      "--podman-socket <path>",
      "Podman API socket (env PSI_PODMAN_SOCKET; default: the scope's)",
    )
    .action(async (name: string, options: { mappingOnly?: boolean; podmanSocket?: string }) => {
      const context = await app.context();
      const { sealLocalSecret } = await import("@psi/provider-local");
      const mapping = await sealLocalSecret(context, () =>
        readSecretInput(app.io.stdin, `local store ${name}`),
      );
      const published = await publishMapping(app, {
        name,
        mapping,
        ...(options.mappingOnly === undefined ? {} : { mappingOnly: options.mappingOnly }),
        ...(options.podmanSocket === undefined ? {} : { podmanSocket: options.podmanSocket }),
        defaultPodmanSocket: context.paths.podmanSocket,
        scope: context.scope,
        stateDir: context.paths.stateDir,
        event: "local.store",
      });
      if (published === undefined) return;
      const { id, mappingFile, stored } = published;
      if (app.globals().json) {
        app.printJson({ name, id, mapping: mappingFile, stored });
      } else {
        app.print(`stored local secret ${name} (Podman secret ID ${id})`);
      }
    });
}
