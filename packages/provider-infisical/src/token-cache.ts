import { createHash } from "node:crypto";
import { unlink } from "node:fs/promises";
import { join } from "node:path";
import {
  type AuthConfig,
  ensureDir,
  type Logger,
  readRegularFile,
  writeFileAtomic,
} from "@psi/core";
import * as v from "valibot";

/** A usable access token and when it stops being used (unix seconds). */
export interface CachedToken {
  accessToken: string;
  expiresAt: number;
}

/**
 * The token cache file of one auth identity (SPEC §8.1, compatible with the reference):
 * `.token.<first 12 hex of sha256("<method>:<identity_id or ''>:<client_id or ''>")>.json`.
 */
export function tokenCacheFileName(auth: AuthConfig): string {
  const identityId = "identity_id" in auth ? auth.identity_id : "";
  const clientId = "client_id" in auth ? auth.client_id : "";
  const digest = createHash("sha256")
    .update(`${auth.method}:${identityId}:${clientId}`, "utf8")
    .digest("hex");
  return `.token.${digest.slice(0, 12)}.json`;
}

const TokenFileSchema = v.object({
  access_token: v.pipe(v.string(), v.nonEmpty()),
  expires_at: v.pipe(v.number(), v.finite()),
});

/** Python's json.dumps of a float: always with a fractional part (`1775626954.0`). */
function pythonFloat(value: number): string {
  const text = String(value);
  return /[.eE]/.test(text) ? text : `${text}.0`;
}

/** Serializes a token file as the reference writes it (json.dumps default separators). */
export function encodeTokenFile(token: CachedToken): string {
  return `{"access_token": ${JSON.stringify(token.accessToken)}, "expires_at": ${pythonFloat(token.expiresAt)}}`;
}

/** A token file holds one JWT and its expiry: a few KiB at most. */
const TOKEN_FILE_MAX_BYTES = 64 * 1024;

/** Reads and writes token cache files in `stateDir`; every failure degrades to "log in again". */
export function createTokenFiles(options: { stateDir: string; logger?: Logger | undefined }) {
  const pathOf = (auth: AuthConfig) => join(options.stateDir, tokenCacheFileName(auth));

  return {
    pathOf,
    /** The cached token, or undefined when the file is missing, unreadable or malformed. */
    async read(auth: AuthConfig): Promise<CachedToken | undefined> {
      let text: string;
      try {
        // In state_dir: never follow a symlink nor wait on a FIFO; a token file is tiny.
        text = (await readRegularFile(pathOf(auth), { maxBytes: TOKEN_FILE_MAX_BYTES })).toString(
          "utf8",
        );
      } catch {
        return undefined;
      }
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        options.logger?.debug("ignoring a token cache file that is not JSON", {
          event: "infisical.token_cache",
        });
        return undefined;
      }
      const parsed = v.safeParse(TokenFileSchema, json);
      if (!parsed.success) {
        options.logger?.debug("ignoring a malformed token cache file", {
          event: "infisical.token_cache",
        });
        return undefined;
      }
      return { accessToken: parsed.output.access_token, expiresAt: parsed.output.expires_at };
    },
    /** Writes the token (0600, atomic); a failure is a warning, the token stays in memory. */
    async write(auth: AuthConfig, token: CachedToken): Promise<void> {
      try {
        await ensureDir(options.stateDir);
        await writeFileAtomic(pathOf(auth), encodeTokenFile(token), { mode: 0o600 });
      } catch (error) {
        options.logger?.warn(
          "could not write the Infisical token cache; logging in on each start",
          {
            event: "infisical.token_cache",
            error: error instanceof Error ? error.message : String(error),
          },
        );
      }
    },
    /** Removes the file (a token Infisical refused). */
    async remove(auth: AuthConfig): Promise<void> {
      await unlink(pathOf(auth)).catch(() => {});
    },
  };
}
