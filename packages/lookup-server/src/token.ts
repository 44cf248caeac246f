import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Env } from "@psi/core";
import { PsiError } from "@psi/core";

/** What a socket token must look like: it is embedded in shell command lines (SPEC §4.2). */
export const SOCKET_TOKEN_PATTERN = /^[A-Za-z0-9._~+/=-]{8,}$/;
/** The systemd credential that carries the token. */
export const SOCKET_TOKEN_CREDENTIAL = "psi-socket-token";

/** Where the token came from. */
export type SocketTokenSource = "credential" | "config" | "env";

/** The resolved token, or none (auth off). */
export interface SocketTokenResolution {
  token: string | undefined;
  source: SocketTokenSource | undefined;
}

/** Options of {@link resolveSocketToken}. */
export interface ResolveSocketTokenOptions {
  /** Reads `CREDENTIALS_DIRECTORY` and `PSI_SOCKET_TOKEN`. */
  env: Env;
  /** `socket_token` from the configuration. */
  configToken?: string | undefined;
}

function describe(source: SocketTokenSource, env: Env): string {
  if (source === "credential")
    return join(env["CREDENTIALS_DIRECTORY"] ?? "", SOCKET_TOKEN_CREDENTIAL);
  // The loader applies PSI_SOCKET_TOKEN over the config key, so either may be meant.
  if (source === "config") return "socket_token (configuration or PSI_SOCKET_TOKEN)";
  return "PSI_SOCKET_TOKEN";
}

/**
 * Resolves the bearer token (SPEC §4.2): `$CREDENTIALS_DIRECTORY/psi-socket-token`
 * (trimmed) → config `socket_token` → `PSI_SOCKET_TOKEN`; none → auth off. A token that
 * does not match {@link SOCKET_TOKEN_PATTERN} is a `socket_token.invalid` PsiError naming
 * where it came from (never the token itself).
 */
export async function resolveSocketToken(
  options: ResolveSocketTokenOptions,
): Promise<SocketTokenResolution> {
  const { env } = options;
  let token: string | undefined;
  let source: SocketTokenSource | undefined;
  const credentials = env["CREDENTIALS_DIRECTORY"];
  if (credentials) {
    try {
      // systemd's credential: a small file in a ramfs, read before serve listens
      const text = readFileSync(join(credentials, SOCKET_TOKEN_CREDENTIAL), "utf8").trim();
      if (text !== "") {
        token = text;
        source = "credential";
      }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") {
        throw new PsiError(
          "socket_token.unreadable",
          `cannot read the socket token ${join(credentials, SOCKET_TOKEN_CREDENTIAL)}: ${(error as Error).message}`,
          {
            cause: error,
            hint: "check the unit's LoadCredential=/LoadCredentialEncrypted= for psi-socket-token",
          },
        );
      }
    }
  }
  if (token === undefined && options.configToken) {
    token = options.configToken;
    source = "config";
  }
  if (token === undefined && env["PSI_SOCKET_TOKEN"]) {
    token = env["PSI_SOCKET_TOKEN"];
    source = "env";
  }
  if (token === undefined || source === undefined) return { token: undefined, source: undefined };
  if (!SOCKET_TOKEN_PATTERN.test(token)) {
    throw new PsiError(
      "socket_token.invalid",
      `the socket token from ${describe(source, env)} is not valid: it must be at least 8 characters of A-Z a-z 0-9 . _ ~ + / = -`,
      {
        hint:
          "the token is embedded in the shell driver's curl command lines; generate one with " +
          "`openssl rand -base64 32` (or `head -c 32 /dev/urandom | base64`)",
      },
    );
  }
  return { token, source };
}
