import { homedir } from "node:os";
import { join } from "node:path";

/** Where PSI runs: `system` for uid 0, `user` otherwise (SPEC §2). */
export type Scope = "system" | "user";

/** Every default location that depends on the scope (SPEC §2). */
export interface ScopePaths {
  config: string;
  configDir: string;
  stateDir: string;
  systemdDir: string;
  socket: string;
  podmanSocket: string;
  unitDir: string;
  containersConfDir: string;
}

/** The environment PSI reads, passed in so libraries never touch `process.env`. */
export type Env = Readonly<Record<string, string | undefined>>;

/** Scope for a uid: 0 is `system`, anything else `user`. */
export function scopeForUid(uid: number): Scope {
  return uid === 0 ? "system" : "user";
}

/** Default paths for a scope; user paths follow XDG with the usual fallbacks. */
export function defaultPaths(
  scope: Scope,
  env: Env,
  uid: number,
  home: string = env["HOME"] ?? homedir(),
): ScopePaths {
  if (scope === "system") {
    return {
      config: "/etc/psi/config.yaml",
      configDir: "/etc/psi",
      stateDir: "/var/lib/psi",
      systemdDir: "/etc/containers/systemd",
      socket: "/run/psi/psi.sock",
      podmanSocket: "/run/podman/podman.sock",
      unitDir: "/etc/systemd/system",
      containersConfDir: "/etc/containers/containers.conf.d",
    };
  }
  const runtimeDir = env["XDG_RUNTIME_DIR"] || `/run/user/${uid}`;
  const configHome = join(home, ".config");
  return {
    config: join(configHome, "psi", "config.yaml"),
    configDir: join(configHome, "psi"),
    stateDir: join(home, ".local", "share", "psi"),
    systemdDir: join(configHome, "containers", "systemd"),
    socket: join(runtimeDir, "psi", "psi.sock"),
    podmanSocket: join(runtimeDir, "podman", "podman.sock"),
    unitDir: join(configHome, "systemd", "user"),
    containersConfDir: join(configHome, "containers", "containers.conf.d"),
  };
}
