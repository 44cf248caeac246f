import type { LoadedConfig } from "@psi/core";
import { isPsiError } from "@psi/core";
import type { App } from "./app.js";

/**
 * The configuration, or undefined when the scope's default file is absent (commands that
 * work before setup then use the scope's defaults). A file named by --config or PSI_CONFIG
 * must exist: app.loadConfig() reports it.
 */
export async function optionalConfig(app: App): Promise<LoadedConfig | undefined> {
  try {
    return await app.loadConfig();
  } catch (error) {
    if (!isPsiError(error, "config.missing")) throw error;
    return undefined;
  }
}
