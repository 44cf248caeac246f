import type { LoadedConfig, Logger, NitrokeyHsmConfig } from "@psi/core";
import { PsiError } from "@psi/core";

/** What the nitrokeyhsm operations take from a configuration. */
export interface NitrokeyHsmSettings {
  /** `providers.nitrokeyhsm`; undefined → the defaults of SPEC §2. */
  config: NitrokeyHsmConfig | undefined;
  stateDir: string;
  /** Whether the configuration has a `providers.nitrokeyhsm` block. */
  configured: boolean;
}

/**
 * The nitrokeyhsm block and state_dir of `loaded`. The hsm cache backend uses the same
 * block, so a host may run the HSM without the provider: operations that only inspect or
 * pin the token work on the defaults, which `logger` is told about.
 */
export function nitrokeyHsmSettings(loaded: LoadedConfig, logger?: Logger): NitrokeyHsmSettings {
  const config = loaded.config.providers?.nitrokeyhsm;
  if (config === undefined) {
    logger?.warn("providers.nitrokeyhsm is not configured; using its defaults (SPEC §2)", {
      event: "config.defaults",
      provider: "nitrokeyhsm",
    });
  }
  return { config, stateDir: loaded.paths.stateDir, configured: config !== undefined };
}

/**
 * {@link nitrokeyHsmSettings} for storing secrets, which only psi serve's provider can
 * open: throws `nitrokeyhsm.not_configured` without the block.
 */
export function nitrokeyHsmProviderSettings(loaded: LoadedConfig): NitrokeyHsmSettings {
  const settings = nitrokeyHsmSettings(loaded);
  if (!settings.configured) {
    throw new PsiError("nitrokeyhsm.not_configured", "the nitrokeyhsm provider is not configured", {
      hint: "add `providers: { nitrokeyhsm: {} }` (with your module, slot and key) to the configuration, so that psi serve can open these secrets",
    });
  }
  return settings;
}
