import { access } from "node:fs/promises";
import { join } from "node:path";
import { type Env, isPsiError, type Logger, PsiError, type Scope } from "@psi/core";

/** Options of {@link registerSealedSecret}. */
export interface RegisterSecretOptions {
  /** The Podman secret's name. */
  name: string;
  /** The sealed mapping (`psi local store --mapping-only` output). */
  mapping: Uint8Array;
  /** `--podman-socket`, when given. */
  podmanSocket?: string | undefined;
  /** The scope's Podman API socket. */
  defaultPodmanSocket: string;
  scope: Scope;
  env: Env;
  /** state_dir, where the shell driver's store should have written the mapping. */
  stateDir: string;
  /** Warned when Podman created the secret but no mapping file appeared. */
  logger?: Logger | undefined;
  /** Event name of that warning, e.g. `local.store`. */
  event?: string | undefined;
}

/** What {@link registerSealedSecret} did. */
export interface RegisteredSecret {
  id: string;
  mappingFile: string;
  /** False when Podman created the secret but no mapping file appeared (another driver setup). */
  stored: boolean;
}

/**
 * Registers a sealed mapping as Podman secret `name` through the Podman API (replacing
 * one of that name); Podman hands it to the shell driver's store, which writes
 * state_dir/<id>. Reports whether that file appeared (and warns through `logger` when not).
 */
export async function registerSealedSecret(
  options: RegisterSecretOptions,
): Promise<RegisteredSecret> {
  const { createPodmanClient, podmanSocketPath } = await import("@psi/podman");
  const socketPath = podmanSocketPath({
    flag: options.podmanSocket,
    env: options.env,
    defaultPath: options.defaultPodmanSocket,
  });
  const podman = createPodmanClient({ socketPath, scope: options.scope });
  let id: string;
  try {
    ({ id } = await podman.replaceSecret(options.name, options.mapping));
  } catch (error) {
    if (isPsiError(error, "podman.unreachable")) {
      throw new PsiError(error.code, error.message, {
        cause: error,
        hint: `${error.hint ?? "start the Podman API"}; or print the mapping with --mapping-only and pipe it to \`podman secret create --driver shell ${options.name} -\``,
      });
    }
    throw error;
  }
  // A missing file means the driver writes somewhere else (another psi serve, another
  // state_dir, or no psi.conf).
  const mappingFile = join(options.stateDir, id);
  const stored = await access(mappingFile).then(
    () => true,
    () => false,
  );
  if (!stored) {
    options.logger?.warn(
      `Podman created secret ${options.name}, but ${mappingFile} does not exist`,
      {
        event: options.event ?? "secret.store",
        secret_id: id,
        hint: "check containers.conf.d/psi.conf (psi install) and that psi serve uses this state_dir",
      },
    );
  }
  return { id, mappingFile, stored };
}
