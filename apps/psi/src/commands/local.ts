import { readSecretInput } from "@psi/core";
import type { Command } from "commander";
import type { App } from "../app.js";
import { addStoreCommand } from "../store-secret.js";

/** `psi local store NAME` (SPEC §8.3, §11). */
export function registerLocal(program: Command, app: App): void {
  const local = program
    .command("local")
    .description("secrets sealed on this host with the cache backend's key");
  addStoreCommand(
    local,
    app,
    "seal stdin as a local secret and register it as Podman secret NAME (shell driver); " +
      "with --mapping-only print the mapping for `podman secret create --driver shell NAME -`",
    async (name) => {
      const context = await app.context();
      const { sealLocalSecret } = await import("@psi/provider-local");
      const mapping = await sealLocalSecret(context, () =>
        readSecretInput(app.io.stdin, `local store ${name}`),
      );
      return {
        mapping,
        where: context,
        text: (id) => `stored local secret ${name} (Podman secret ID ${id})`,
      };
    },
  );
}
