import { PsiError, type Scope } from "@psi/core";
import type { App } from "./app.js";

/** All of stdin as bytes; the chunk copies are zeroed (it may be a secret). */
export async function readAll(stdin: App["io"]["stdin"]): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stdin) {
    chunks.push(typeof chunk === "string" ? Buffer.from(chunk) : Buffer.from(chunk as Uint8Array));
  }
  const data = Buffer.concat(chunks);
  for (const chunk of chunks) chunk.fill(0);
  return data;
}

/**
 * Reads a secret value from stdin for `psi local store` / `psi nitrokeyhsm store`;
 * refuses a terminal (the value would echo) and an empty input. `what` is the command
 * after `psi`, used in the hints.
 */
export async function readSecretInput(stdin: App["io"]["stdin"], what: string): Promise<Buffer> {
  if (stdin.isTTY) {
    throw new PsiError("input.tty", `${what} reads the value from stdin, which is a terminal`, {
      hint: `pipe the value in, e.g. printf %s "$VALUE" | psi ${what}`,
    });
  }
  const data = await readAll(stdin);
  if (data.length === 0) {
    throw new PsiError("input.empty", `${what}: stdin is empty, there is nothing to seal`, {
      hint: `pipe the value in, e.g. printf %s "$VALUE" | psi ${what} (printf %s adds no newline)`,
    });
  }
  return data;
}

/** Where and how {@link publishMapping} registers a sealed secret. */
export interface PublishOptions {
  name: string;
  mapping: Uint8Array;
  /** Print the mapping instead (for `podman secret create --driver shell NAME -`). */
  mappingOnly?: boolean;
  podmanSocket?: string;
  defaultPodmanSocket: string;
  scope: Scope;
  stateDir: string;
  /** Log event name, e.g. `local.store`. */
  event: string;
}

/**
 * Registers a mapping as Podman secret `name` through the Podman API (Podman hands it to
 * the shell driver's store, which writes state_dir/<id>), or prints it with
 * `mappingOnly`. Returns the secret ID and whether the mapping file appeared.
 */
export async function publishMapping(
  app: App,
  options: PublishOptions,
): Promise<{ id: string; mappingFile: string; stored: boolean } | undefined> {
  if (options.mappingOnly) {
    app.io.stdout.write(options.mapping);
    if (app.io.stdout.isTTY) app.io.stdout.write("\n");
    return undefined;
  }
  const { registerSealedSecret } = await import("@psi/ops");
  const { id, mappingFile, stored } = await registerSealedSecret({ ...options, env: app.env });
  if (!stored) {
    app.logger().warn(`Podman created secret ${options.name}, but ${mappingFile} does not exist`, {
      event: options.event,
      secret_id: id,
      hint: "check containers.conf.d/psi.conf (psi install) and that psi serve uses this state_dir",
    });
  }
  return { id, mappingFile, stored };
}
