import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { errorMessage, type Mapping, PsiError, parseMapping, secretIdProblem } from "@psi/core";

/** A Podman secret as its API lists it (structurally `PodmanSecret` of @psi/podman). */
export interface PodmanSecretRef {
  id: string;
  name: string;
  driver: string;
  driverOptions: Readonly<Record<string, string>>;
}

/** Options of {@link resolvePodmanSecretValue}. */
export interface ResolvePodmanSecretOptions {
  /** PSI's state_dir: where the shell driver keeps mappings by secret ID. */
  stateDir: string;
  /** Resolves a PSI mapping to its value (the provider named in the mapping). */
  lookup: (mapping: Mapping) => Promise<Uint8Array>;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

function unresolvable(secret: PodmanSecretRef, why: string, hint: string, cause?: unknown) {
  return new PsiError(
    "import.unresolvable",
    `cannot read the value of Podman secret ${secret.name}: ${why}`,
    cause === undefined ? { hint } : { hint, cause },
  );
}

/**
 * The value of a Podman secret, for importing it into Infisical. Podman 4.3's API does not
 * reveal secret values (`showsecret` came later), so the value is read where the driver
 * keeps it: the `file` driver's `secretsdata.json` (base64 by secret ID, under the
 * driver's `path` option) or, for the `shell` driver, PSI's own mapping in `state_dir`
 * resolved through `lookup`. Other drivers (pass, foreign shell commands) cannot be read:
 * a clear `import.unresolvable` error. Values must be UTF-8 text (Infisical stores text).
 */
export async function resolvePodmanSecretValue(
  secret: PodmanSecretRef,
  options: ResolvePodmanSecretOptions,
): Promise<string> {
  let bytes: Uint8Array;
  if (secret.driver === "file") {
    const dir = secret.driverOptions["path"];
    if (!dir) {
      throw unresolvable(
        secret,
        "the file driver records no path",
        "re-create the secret, or import its value from a file with import env-file",
      );
    }
    const file = join(dir, "secretsdata.json");
    let data: unknown;
    try {
      data = JSON.parse(await readFile(file, "utf8"));
    } catch (error) {
      throw unresolvable(
        secret,
        `cannot read ${file} (${errorMessage(error)})`,
        "run as the user that owns the Podman storage (root for system secrets)",
        error,
      );
    }
    const encoded =
      typeof data === "object" && data !== null && !Array.isArray(data)
        ? (data as Record<string, unknown>)[secret.id]
        : undefined;
    if (typeof encoded !== "string") {
      throw unresolvable(
        secret,
        `${file} holds no data for secret ID ${secret.id}`,
        "check the secret with podman secret inspect",
      );
    }
    bytes = Buffer.from(encoded, "base64");
  } else if (secret.driver === "shell") {
    const problem = secretIdProblem(secret.id);
    if (problem !== undefined) {
      throw unresolvable(secret, `its ID is unusable (${problem})`, "check podman secret ls");
    }
    const file = join(options.stateDir, secret.id);
    let raw: Buffer;
    try {
      raw = await readFile(file);
    } catch (error) {
      throw unresolvable(
        secret,
        `it uses the shell driver but ${file} does not exist (not a PSI secret, or another state_dir)`,
        "Podman 4.3 cannot reveal shell-driver values; import them from their source instead",
        error,
      );
    }
    bytes = await options.lookup(parseMapping(raw, file));
  } else {
    throw unresolvable(
      secret,
      `Podman 4.3 does not reveal values of the ${secret.driver || "unknown"} driver`,
      "import the value from its source (import env-file), or re-create it with the file driver",
    );
  }
  try {
    return utf8.decode(bytes);
  } catch {
    throw unresolvable(
      secret,
      "the value is not UTF-8 text, and Infisical stores text",
      "store binary values base64-encoded",
    );
  }
}
