import { access } from "node:fs/promises";
import { join } from "node:path";
import { PsiError } from "@psi/core";
import { createPodmanClient, podmanSocketPath } from "@psi/podman";
import { sealLocal } from "@psi/provider-local";
import type { Command } from "commander";
import type { App } from "../app.js";

/** Reads all of a stream; refuses a terminal (the value would echo) and an empty input. */
export async function readSecretInput(stdin: App["io"]["stdin"], what: string): Promise<Buffer> {
  if (stdin.isTTY) {
    throw new PsiError("input.tty", `${what} reads the value from stdin, which is a terminal`, {
      hint: `pipe the value in, e.g. printf %s "$VALUE" | psi ${what}`,
    });
  }
  const chunks: Buffer[] = [];
  for await (const chunk of stdin)
    chunks.push(typeof chunk === "string" ? Buffer.from(chunk) : Buffer.from(chunk as Uint8Array));
  const data = Buffer.concat(chunks);
  if (data.length === 0) {
    throw new PsiError("input.empty", `${what}: stdin is empty, there is nothing to seal`, {
      hint: `pipe the value in, e.g. printf %s "$VALUE" | psi ${what} (printf %s adds no newline)`,
    });
  }
  return data;
}

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
      if (context.config.providers?.local === undefined) {
        throw new PsiError("local.not_configured", "the local provider is not configured", {
          hint: "add `providers: { local: {} }` to the configuration, so that psi serve can open local secrets",
        });
      }
      const value = await readSecretInput(app.io.stdin, `local store ${name}`);
      const backend = await context.openCacheBackend?.();
      if (backend === undefined) {
        throw new PsiError(
          "local.no_backend",
          "local secrets are sealed with the cache backend, and none is configured",
          {
            hint: "set cache.backend (keyfile, tpm or hsm) and run `psi cache init --backend ...`",
          },
        );
      }
      const mapping = await sealLocal(backend, value);
      value.fill(0);
      if (options.mappingOnly) {
        app.io.stdout.write(mapping);
        if (app.io.stdout.isTTY) app.io.stdout.write("\n");
        return;
      }
      const socketPath = podmanSocketPath({
        flag: options.podmanSocket,
        env: app.env,
        defaultPath: context.paths.podmanSocket,
      });
      const podman = createPodmanClient({ socketPath, scope: context.scope });
      const { id } = await podman.replaceSecret(name, mapping);
      // Podman hands the mapping to the driver's store command; a missing file means the
      // driver writes somewhere else (another psi serve, another state_dir, or no psi.conf).
      const mappingFile = join(context.paths.stateDir, id);
      const stored = await access(mappingFile).then(
        () => true,
        () => false,
      );
      if (!stored) {
        app.logger().warn(`Podman created secret ${name}, but ${mappingFile} does not exist`, {
          event: "local.store",
          secret_id: id,
          hint: "check containers.conf.d/psi.conf (psi install) and that psi serve uses this state_dir",
        });
      }
      if (app.globals().json) {
        app.printJson({ name, id, mapping: mappingFile, stored });
      } else {
        app.print(`stored local secret ${name} (Podman secret ID ${id})`);
      }
    });
}
