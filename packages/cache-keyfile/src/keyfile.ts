import { randomBytes as nodeRandomBytes } from "node:crypto";
import { constants } from "node:fs";
import { lstat, open } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { CacheBackend, PsiContext } from "@psi/core";
import { aesKeyBackend, defineCacheBackend, ensureDir, PsiError, writeFileAtomic } from "@psi/core";
import { type RandomBytes, TAG_KEYFILE } from "@psi/envelope";

/** The PSIC header byte of the keyfile backend (SPEC §6.1). */
export const KEYFILE_TAG = TAG_KEYFILE;
/** Length of the AES-256 key the file holds. */
export const KEYFILE_KEY_LENGTH = 32;

const INIT_HINT = "run `psi cache init --backend keyfile` to create it";

/** Where the key lives without `cache.key_file`: `<config_dir>/cache.keyfile` (SPEC §7). */
export function defaultKeyfilePath(configDir: string): string {
  return join(configDir, "cache.keyfile");
}

/** The key file a context configures: `cache.key_file`, else the default in the config dir. */
export function keyfilePathOf(context: Pick<PsiContext, "config" | "paths">): string {
  return context.config.cache?.key_file ?? defaultKeyfilePath(context.paths.configDir);
}

function mode(bits: number): string {
  return `0${(bits & 0o777).toString(8)}`;
}

/**
 * Reads the 32-byte key. Missing file, wrong size, something other than a regular file, or
 * a mode that lets group or others read it (like ssh with private keys: a key others could
 * have copied is refused, not warned about) are PsiErrors naming the path and the fix.
 */
export async function readKeyfile(path: string): Promise<Uint8Array> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    // O_NONBLOCK: serve re-reads the key at run time (reloadKey); a FIFO must not stall it.
    handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") {
      throw new PsiError("cache.keyfile_missing", `keyfile cache backend: ${path} does not exist`, {
        cause: error,
        hint: `${INIT_HINT} (or point cache.key_file at the existing key)`,
      });
    }
    throw new PsiError(
      "cache.keyfile_unreadable",
      `keyfile cache backend: cannot read ${path}: ${(error as Error).message}`,
      { cause: error, hint: "psi must run as the user that owns the key file" },
    );
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) {
      throw new PsiError(
        "cache.keyfile_invalid",
        `keyfile cache backend: ${path} is not a regular file`,
        {
          hint: INIT_HINT,
        },
      );
    }
    if ((stat.mode & 0o077) !== 0) {
      throw new PsiError(
        "cache.keyfile_insecure",
        `keyfile cache backend: ${path} has mode ${mode(stat.mode)}; group and others must have no access`,
        {
          hint: `chmod 600 ${path} (and consider rotating the key: psi cache init --backend keyfile --force)`,
        },
      );
    }
    if (stat.size !== KEYFILE_KEY_LENGTH) {
      // Never read (let alone print) a file of the wrong shape: it may be some other secret.
      throw new PsiError(
        "cache.keyfile_invalid",
        `keyfile cache backend: ${path} is ${stat.size} bytes, expected a ${KEYFILE_KEY_LENGTH}-byte key`,
        {
          hint: "re-create it with `psi cache init --backend keyfile --force` (the cache is rewritten by the next setup)",
        },
      );
    }
    const key = Buffer.alloc(KEYFILE_KEY_LENGTH);
    const { bytesRead } = await handle.read(key, 0, KEYFILE_KEY_LENGTH, 0);
    if (bytesRead !== KEYFILE_KEY_LENGTH) {
      key.fill(0);
      throw new PsiError(
        "cache.keyfile_invalid",
        `keyfile cache backend: ${path} changed while it was read`,
        {
          hint: INIT_HINT,
        },
      );
    }
    return key;
  } finally {
    await handle.close();
  }
}

/** Options of {@link createKeyfileCacheBackend}. */
export interface KeyfileBackendOptions {
  /** The key file. */
  path: string;
  /** Nonce source; injectable so tests can pin the bytes written. */
  randomBytes?: RandomBytes;
}

/** The keyfile backend (tag 0x03): AES-256-GCM under the 32-byte key read from `path` on `open()`. */
export function createKeyfileCacheBackend(options: KeyfileBackendOptions): CacheBackend {
  return aesKeyBackend({
    name: "keyfile",
    tag: KEYFILE_TAG,
    loadKey: () => readKeyfile(options.path),
    randomBytes: options.randomBytes,
  });
}

/** A keyfile backend over a key already in memory (right after {@link initKeyfile}). */
export function keyfileCacheBackendFromKey(
  key: Uint8Array,
  options: { randomBytes?: RandomBytes } = {},
): CacheBackend {
  if (key.length !== KEYFILE_KEY_LENGTH) {
    throw new PsiError(
      "cache.keyfile_invalid",
      `keyfile cache key must be ${KEYFILE_KEY_LENGTH} bytes, got ${key.length}`,
    );
  }
  const own = Buffer.from(key);
  return aesKeyBackend({
    name: "keyfile",
    tag: KEYFILE_TAG,
    loadKey: async () => Buffer.from(own),
    randomBytes: options.randomBytes,
  });
}

/** Options of {@link initKeyfile}. */
export interface InitKeyfileOptions {
  path: string;
  /** Replace an existing key (every cache written with it becomes unreadable). */
  force?: boolean;
  randomBytes?: RandomBytes;
}

/**
 * Creates a fresh 32-byte key at `path`, mode 0600 from creation (atomic write; the
 * directory is created 0700 when missing). Refuses to replace an existing key unless
 * `force`. Returns the key so the caller can write an empty cache with it.
 */
export async function initKeyfile(options: InitKeyfileOptions): Promise<Uint8Array> {
  const { path } = options;
  if (!options.force) {
    const existing = await lstat(path).catch((error: NodeJS.ErrnoException) => {
      if (error.code === "ENOENT") return undefined;
      throw error;
    });
    if (existing) {
      throw new PsiError("cache.keyfile_exists", `keyfile cache backend: ${path} already exists`, {
        hint:
          "keep it (the cache encrypted with it stays readable), or replace it with --force " +
          "(the existing cache becomes unreadable until the next setup rewrites it)",
      });
    }
  }
  const key = Buffer.from((options.randomBytes ?? nodeRandomBytes)(KEYFILE_KEY_LENGTH));
  if (key.length !== KEYFILE_KEY_LENGTH) {
    throw new RangeError(
      `random source returned ${key.length} bytes for a ${KEYFILE_KEY_LENGTH}-byte key`,
    );
  }
  await ensureDir(dirname(path), 0o700);
  await writeFileAtomic(path, key, { mode: 0o600 });
  return key;
}

/** The keyfile cache backend, registered by name in the CLI's wiring. */
export const keyfileCacheBackend = defineCacheBackend((context) =>
  createKeyfileCacheBackend({ path: keyfilePathOf(context) }),
);
