import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { type Env, errorMessage, PsiError } from "@psi/core";

/** A resolved HSM user PIN and where it came from (never log `pin`). */
export interface ResolvedHsmPin {
  pin: string;
  /** `$CREDENTIALS_DIRECTORY/hsm-pin`, `providers.nitrokeyhsm.pin` or `PSI_NITROKEYHSM_PIN`. */
  source: string;
}

/** Inputs of {@link resolveHsmPin}: the environment and the config's `pin` (null when unset). */
export interface ResolveHsmPinOptions {
  env: Env;
  configPin?: string | null;
}

/**
 * Resolves the HSM user PIN (SPEC §8.2): `$CREDENTIALS_DIRECTORY/hsm-pin` (trimmed), then
 * the config's `pin`, then `PSI_NITROKEYHSM_PIN`. A value that is present but empty
 * counts (NSS softokn's PIN is empty). None → `hsm.pin_missing` listing the three ways.
 */
export async function resolveHsmPin(options: ResolveHsmPinOptions): Promise<ResolvedHsmPin> {
  const credentialsDir = options.env["CREDENTIALS_DIRECTORY"];
  if (credentialsDir) {
    const path = join(credentialsDir, "hsm-pin");
    try {
      return { pin: (await readFile(path, "utf8")).trim(), source: path };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") {
        throw new PsiError(
          "hsm.pin_unreadable",
          `cannot read the HSM PIN credential ${path}: ${errorMessage(error)}`,
          {
            hint: "check the credential's permissions (systemd: LoadCredentialEncrypted=hsm-pin:...)",
            cause: error,
          },
        );
      }
    }
  }
  if (options.configPin !== undefined && options.configPin !== null) {
    return { pin: options.configPin, source: "providers.nitrokeyhsm.pin" };
  }
  const fromEnv = options.env["PSI_NITROKEYHSM_PIN"];
  if (fromEnv !== undefined) return { pin: fromEnv, source: "PSI_NITROKEYHSM_PIN" };
  throw new PsiError("hsm.pin_missing", "no HSM user PIN is configured", {
    hint:
      "provide it one of three ways: a systemd credential hsm-pin ($CREDENTIALS_DIRECTORY/hsm-pin, " +
      "e.g. LoadCredentialEncrypted=hsm-pin:/etc/psi/hsm-pin.cred), providers.nitrokeyhsm.pin in the " +
      "config, or the PSI_NITROKEYHSM_PIN environment variable",
  });
}
