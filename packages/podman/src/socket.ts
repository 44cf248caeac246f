import type { Env } from "@psi/core";

/** Where the Podman API socket path comes from: flag, environment, or the scope default. */
export interface PodmanSocketOptions {
  /** `--podman-socket PATH` when given. */
  flag?: string | undefined;
  /** Environment holding `PSI_PODMAN_SOCKET`. */
  env: Env;
  /** The scope default (`ScopePaths.podmanSocket` from @psi/core's `defaultPaths`). */
  defaultPath: string;
}

/** Resolves the Podman API socket: `--podman-socket` → `PSI_PODMAN_SOCKET` → scope default (SPEC §11). */
export function podmanSocketPath(options: PodmanSocketOptions): string {
  if (options.flag) return options.flag;
  const fromEnv = options.env["PSI_PODMAN_SOCKET"];
  if (fromEnv) return fromEnv;
  return options.defaultPath;
}
