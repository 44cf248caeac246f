import { dirname, join } from "node:path";
import { isWithin, type UnitSettings } from "./settings.js";

/** What the configured cache backend adds to a serve or setup unit. */
export interface CacheWiring {
  /** Extra `After=` units (`pcscd.service` for the hsm backend). */
  after: string[];
  /** `[Container]` lines (quadlets only). */
  container: string[];
  /** `[Service]` lines (`LoadCredentialEncrypted=`). */
  service: string[];
}

/**
 * Cache wiring (SPEC §10) for the unit `unit` (the service name, because systemd puts
 * its credentials under `<runtime dir>/credentials/<unit>`). tpm: the sealed key as a
 * credential; hsm: the PIN credential and pcscd's socket; keyfile: the key file and a
 * cache outside the mounted directories are mounted (container) as they are.
 */
export function cacheWiring(
  settings: UnitSettings,
  unit: string,
  role: "serve" | "setup",
): CacheWiring {
  const wiring: CacheWiring = { after: [], container: [], service: [] };
  const cache = settings.cache;
  if (!cache) return wiring;
  const credentials = [
    `Volume=${join(settings.runtimeDir, "credentials", unit)}:/run/credentials:ro`,
    "Environment=CREDENTIALS_DIRECTORY=/run/credentials",
  ];
  if (cache.backend === "hsm") {
    wiring.after.push("pcscd.service");
    wiring.container.push(`Volume=${settings.pcscdVolume}:/run/pcscd:rw`, ...credentials);
    wiring.service.push("LoadCredentialEncrypted=hsm-pin");
  } else if (cache.backend === "tpm") {
    wiring.container.push(...credentials);
    wiring.service.push(
      `LoadCredentialEncrypted=psi-cache-key:${join(settings.configDir, "cache.key")}`,
    );
  } else if (cache.keyFile && !isWithin(cache.keyFile, settings.configDir)) {
    wiring.container.push(`Volume=${cache.keyFile}:${cache.keyFile}:ro`);
  }
  const cacheDir = dirname(cache.path);
  if (!isWithin(cacheDir, settings.stateDir)) {
    wiring.container.push(`Volume=${cacheDir}:${cacheDir}:${role === "setup" ? "z" : "ro"}`);
  }
  return wiring;
}
