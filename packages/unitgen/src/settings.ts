import { dirname, isAbsolute, join, relative } from "node:path";
import type { PsiConfig, Scope, ScopePaths } from "@psi/core";

/** A configured cache backend, as the units need it (only when the cache is on). */
export interface UnitCacheSettings {
  backend: "tpm" | "hsm" | "keyfile";
  /** `cache.enc`, resolved (`cache.path` or `<state_dir>/cache.enc`). */
  path: string;
  /** The keyfile backend's key (`cache.key_file` or `<config_dir>/cache.keyfile`). */
  keyFile?: string | undefined;
  /** systemd time spans for the refresh timer (`OnBootSec=`/`OnUnitActiveSec=`, `RandomizedDelaySec=`). */
  refreshInterval: string;
  refreshRandomizedDelay: string;
}

/**
 * Everything the unit renderers read: a small, explicit subset of the configuration with
 * the scope's paths resolved. Build it with {@link unitSettingsFromConfig} or by hand
 * (deployment scripts that have no config file).
 */
export interface UnitSettings {
  scope: Scope;
  /** The configuration file; units pass it with `-c` where psi would not look by itself. */
  configFile: string;
  /** Where a native psi of this scope looks without `-c`. */
  defaultConfigFile: string;
  configDir: string;
  stateDir: string;
  /** Quadlet directory (`systemd_dir`); setup writes workload drop-ins here. */
  systemdDir: string;
  /** The lookup socket. */
  socket: string;
  podmanSocket: string;
  dbusSocket: string;
  /** `/run` (system) or `$XDG_RUNTIME_DIR` (user): where systemd puts unit credentials. */
  runtimeDir: string;
  /** Host CA bundle that PSI's HTTP clients must trust (`ca_cert`). */
  caCert?: string | undefined;
  /** Configured providers, in a stable order: one setup unit each. */
  providers: readonly string[];
  /** Undefined when the cache is disabled or has no backend. */
  cache?: UnitCacheSettings | undefined;
  /** Named volume holding pcscd's socket (`providers.nitrokeyhsm.pcscd_volume`). */
  pcscdVolume: string;
  /** Directories the TLS renewal writes to; empty when no certificates are configured. */
  tlsOutputDirs: readonly string[];
}

const PROVIDER_ORDER = ["infisical", "nitrokeyhsm", "local"];

/** True when `path` is `dir` or inside it. */
export function isWithin(path: string, dir: string): boolean {
  const rel = relative(dir, path);
  return rel === "" || (!rel.startsWith("..") && !isAbsolute(rel));
}

/**
 * Derives {@link UnitSettings} from a validated config and the scope's resolved paths
 * (config keys such as `state_dir` win over the paths; `paths.config` is the file read).
 * `runtimeDir` defaults to `/run` for the system scope and to the directory above the
 * socket's directory for the user scope (`$XDG_RUNTIME_DIR/psi/psi.sock`);
 * `defaultConfigFile` to `/etc/psi/config.yaml` for the system scope and to
 * `<config home>/psi/config.yaml` for the user scope (the unit dir is
 * `<config home>/systemd/user`).
 */
export function unitSettingsFromConfig(
  config: PsiConfig,
  paths: ScopePaths,
  scope: Scope,
  options: { runtimeDir?: string; defaultConfigFile?: string } = {},
): UnitSettings {
  const runtimeDir =
    options.runtimeDir ?? (scope === "system" ? "/run" : dirname(dirname(paths.socket)));
  const defaultConfigFile =
    options.defaultConfigFile ??
    (scope === "system"
      ? "/etc/psi/config.yaml"
      : join(dirname(dirname(paths.unitDir)), "psi", "config.yaml"));
  const configDir = paths.configDir;
  const stateDir = config.state_dir ?? paths.stateDir;
  const providersBlock: Record<string, unknown> = { ...(config.providers ?? {}) };
  const configured = Object.keys(providersBlock).filter((name) => providersBlock[name] != null);
  const providers = [
    ...PROVIDER_ORDER.filter((name) => configured.includes(name)),
    ...configured.filter((name) => !PROVIDER_ORDER.includes(name)).sort(),
  ];
  const cacheConfig = config.cache;
  const cache: UnitCacheSettings | undefined =
    cacheConfig?.enabled !== false && cacheConfig?.backend
      ? {
          backend: cacheConfig.backend,
          path: cacheConfig.path ?? join(stateDir, "cache.enc"),
          keyFile:
            cacheConfig.backend === "keyfile"
              ? (cacheConfig.key_file ?? join(configDir, "cache.keyfile"))
              : undefined,
          refreshInterval: String(cacheConfig.refresh_interval ?? "1h"),
          refreshRandomizedDelay: String(cacheConfig.refresh_randomized_delay ?? "5m"),
        }
      : undefined;
  const tlsOutputDirs = new Set<string>();
  for (const certificate of Object.values(config.providers?.infisical?.tls?.certificates ?? {})) {
    const { cert, key, chain, ca } = certificate.output;
    for (const file of [cert, key, chain, ca]) if (file) tlsOutputDirs.add(dirname(file));
  }
  return {
    scope,
    configFile: paths.config,
    defaultConfigFile,
    configDir,
    stateDir,
    systemdDir: config.systemd_dir ?? paths.systemdDir,
    socket: paths.socket,
    podmanSocket: paths.podmanSocket,
    dbusSocket: scope === "system" ? "/run/dbus/system_bus_socket" : join(runtimeDir, "bus"),
    runtimeDir,
    caCert: config.ca_cert ?? undefined,
    providers,
    cache,
    pcscdVolume: config.providers?.nitrokeyhsm?.pcscd_volume ?? "pcscd-socket",
    tlsOutputDirs: [...tlsOutputDirs].sort(),
  };
}
