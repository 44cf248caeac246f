import { randomBytes } from "node:crypto";
import { open, unlink } from "node:fs/promises";
import { dirname, join } from "node:path";
import { type CacheFileStatus, readCacheFile, readCacheStatus, writeCacheFile } from "@psi/cache";
import type {
  CacheBackend,
  Env,
  LoadedConfig,
  Logger,
  Mapping,
  NitrokeyHsmConfig,
  Scope,
  ScopePaths,
} from "@psi/core";
import {
  defaultPaths,
  ensureDir,
  errorMessage,
  isPsiError,
  PsiError,
  parseMapping,
  readMappingFile,
  scopeForUid,
  secretIdProblem,
} from "@psi/core";
import { HMAC_KEY_LENGTH } from "@psi/envelope";

// `psi cache init / status / invalidate` as library functions (SPEC §11). Heavy modules
// (PKCS#11, systemd-creds plumbing, the Podman client) load inside the functions that
// need them, so a cache status stays fast.

/** Where the cache lives: the file, the config's directory and cache settings. */
export interface CacheLocations {
  paths: ScopePaths;
  /** `cache.path`, or `<state_dir>/cache.enc`. */
  cachePath: string;
  /** `cache.key_file`, or `<config_dir>/cache.keyfile`. */
  keyFile: string;
  /** `cache.backend` as configured (undefined without a config file or the key). */
  configuredBackend: string | undefined;
  /** `cache.enabled` (false without a configuration file). */
  enabled: boolean;
  /** The configuration file read, when there is one. */
  configFile: string | undefined;
}

/**
 * The cache's locations from the configuration, or the scope defaults when there is no
 * configuration file yet (`psi cache init` runs on hosts being provisioned).
 */
export function cacheLocations(
  loaded: LoadedConfig | undefined,
  host: { env: Env; uid: number },
): CacheLocations {
  if (loaded !== undefined) {
    const { paths, config } = loaded;
    return {
      paths,
      cachePath: config.cache?.path ?? join(paths.stateDir, "cache.enc"),
      keyFile: config.cache?.key_file ?? join(paths.configDir, "cache.keyfile"),
      configuredBackend: config.cache?.backend,
      enabled: config.cache?.enabled ?? true,
      configFile: loaded.file,
    };
  }
  const paths = defaultPaths(scopeForUid(host.uid), host.env, host.uid);
  return {
    paths,
    cachePath: join(paths.stateDir, "cache.enc"),
    keyFile: join(paths.configDir, "cache.keyfile"),
    configuredBackend: undefined,
    enabled: false,
    configFile: undefined,
  };
}

/** Options of {@link initCache}; each backend reads the ones it takes. */
export interface CacheInitOptions {
  backend: string;
  where: CacheLocations;
  env: Env;
  logger: Logger;
  /** Where the key goes (tpm: `<config_dir>/cache.key`; keyfile: `where.keyFile`). */
  keyPath?: string | undefined;
  /** Replace an existing key (and, for hsm, trust a token whose key changed). */
  force?: boolean | undefined;
  /** tpm: what systemd-creds seals with (default tpm2). */
  withKey?: string | undefined;
  /** tpm: TPM device or TCTI. */
  tpm2Device?: string | undefined;
  /** hsm: the configuration's `providers.nitrokeyhsm` block (PIN source, module, label). */
  hsm?: NitrokeyHsmConfig | undefined;
}

/** What {@link initCache} wrote. */
export interface CacheInitResult {
  backend: string;
  /** The key material's path (hsm: the token's public key). */
  keyPath: string;
  cachePath: string;
  /** True when `keyPath` holds a public key, not a secret one (hsm). */
  publicKey: boolean;
  /** Things the operator still has to do (unit directives, config keys). */
  notes: string[];
}

interface Provisioned {
  keyPath: string;
  backend: CacheBackend;
  notes?: string[];
  publicKey?: boolean;
}

type Initializer = (options: CacheInitOptions) => Promise<Provisioned>;

/** Per backend: a one-line description and how its key is provisioned. */
export const cacheInitializers: Record<string, { describe: string; init: Initializer }> = {
  tpm: {
    describe: "key sealed by this host's TPM through systemd-creds (recommended)",
    init: initTpm,
  },
  hsm: { describe: "key wrapped by the RSA key on a PKCS#11 token (Nitrokey HSM)", init: initHsm },
  keyfile: {
    describe: "key in a local file beside the data (development, CI, hosts without a TPM; weaker)",
    init: initKeyfileBackend,
  },
};

/** The backends as an indented list, one per line, for messages. */
export function listCacheBackends(): string {
  return Object.entries(cacheInitializers)
    .map(([name, { describe }]) => `  ${name.padEnd(8)} ${describe}`)
    .join("\n");
}

/** Creates `dir` if needed and proves a file can be created in it (then removes the probe). */
async function assertWritableDir(dir: string): Promise<void> {
  const probe = join(dir, `.psi-probe-${process.pid}-${randomBytes(4).toString("hex")}`);
  try {
    await ensureDir(dir, 0o700);
    await (await open(probe, "wx", 0o600)).close();
    await unlink(probe);
  } catch (error) {
    throw new PsiError(
      "cache.dir_unwritable",
      `cannot write the cache in ${dir}: ${errorMessage(error)}; nothing was written`,
      {
        cause: error,
        hint: "fix state_dir (or cache.path) or the directory's permissions and mount, then run psi cache init again",
      },
    );
  }
}

/** Throws `cache.unknown_backend` (listing the backends) unless `name` is one. */
export function assertCacheBackend(name: string): void {
  if (cacheInitializers[name] === undefined) {
    throw new PsiError(
      "cache.unknown_backend",
      `unknown cache backend "${name}"; the backends are:\n${listCacheBackends()}`,
    );
  }
}

/** `psi cache init`: provisions the backend's key, then writes an empty cache with it. */
export async function initCache(options: CacheInitOptions): Promise<CacheInitResult> {
  assertCacheBackend(options.backend);
  const entry = cacheInitializers[options.backend] as (typeof cacheInitializers)[string];
  const { where } = options;
  // Check first, write last: a key written before the cache fails to write would make the
  // retry fail with "already exists".
  await assertWritableDir(dirname(where.cachePath));
  const { keyPath, backend, notes = [], publicKey = false } = await entry.init(options);
  try {
    await writeCacheFile({
      path: where.cachePath,
      backend,
      contents: { hmacKey: randomBytes(HMAC_KEY_LENGTH), entries: new Map() },
    });
  } finally {
    await backend.close();
  }
  if (where.configuredBackend !== options.backend) {
    notes.push(
      where.configFile === undefined
        ? `create the configuration with cache: { backend: ${options.backend} } so psi uses it`
        : `set cache.backend: ${options.backend} in ${where.configFile} (it is ${where.configuredBackend ?? "unset"})`,
    );
  }
  return { backend: options.backend, keyPath, cachePath: where.cachePath, publicKey, notes };
}

async function initKeyfileBackend(options: CacheInitOptions): Promise<Provisioned> {
  const { initKeyfile, keyfileCacheBackendFromKey } = await import("@psi/cache-keyfile");
  const keyPath = options.keyPath ?? options.where.keyFile;
  const key = await initKeyfile({ path: keyPath, force: options.force === true });
  const backend = keyfileCacheBackendFromKey(key);
  key.fill(0);
  await backend.open();
  const notes =
    keyPath === options.where.keyFile
      ? []
      : [`set cache.key_file: ${keyPath} in the configuration so psi finds the key`];
  return { keyPath, backend, notes };
}

/** tpm: 32 random bytes sealed by systemd-creds to `<config_dir>/cache.key` (or keyPath). */
async function initTpm(options: CacheInitOptions): Promise<Provisioned> {
  const { initTpmKey, tpmCacheBackendFromKey, TPM_CREDENTIAL_NAME, TPM_WITH_KEYS } = await import(
    "@psi/cache-tpm"
  );
  const { withKey, tpm2Device } = options;
  const known = TPM_WITH_KEYS.find((k) => k === withKey);
  if (withKey !== undefined && known === undefined) {
    throw new PsiError("cache.bad_with_key", `--with-key ${withKey} is not a systemd-creds key`, {
      hint: `use one of ${TPM_WITH_KEYS.join(", ")}`,
    });
  }
  const defaultKeyPath = join(options.where.paths.configDir, "cache.key");
  const keyPath = options.keyPath ?? defaultKeyPath;
  const sealed = await initTpmKey({
    keyPath,
    ...(known === undefined ? {} : { withKey: known }),
    ...(tpm2Device === undefined ? {} : { tpm2Device }),
    force: options.force === true,
    env: options.env,
  });
  const backend = tpmCacheBackendFromKey(sealed.key);
  sealed.key.fill(0);
  await backend.open();
  const notes = [
    `sealed with systemd-creds --with-key=${sealed.withKey}; units that run psi need ` +
      `LoadCredentialEncrypted=${TPM_CREDENTIAL_NAME}:${keyPath}` +
      (keyPath === defaultKeyPath
        ? " (psi systemd install adds it)"
        : ` (psi systemd install writes ${defaultKeyPath})`),
  ];
  return { keyPath, backend, notes };
}

/** hsm: opens the token (PIN resolution), pins its public key, seals with it. */
async function initHsm(options: CacheInitOptions): Promise<Provisioned> {
  const { openNitrokeyHsm, pinPublicKey } = await import("@psi/cache-hsm");
  const { hybridBackend, TAG_HSM } = await import("@psi/envelope");
  const stateDir = options.where.paths.stateDir;
  const force = options.force === true;
  const hsm = await openNitrokeyHsm({
    config: options.hsm,
    stateDir,
    env: options.env,
    logger: options.logger,
    trustToken: force,
  });
  try {
    const pinned = await pinPublicKey(stateDir, hsm.publicKeyDer, { force });
    const cipher = hybridBackend({
      publicKeyDer: hsm.publicKeyDer,
      unwrap: (wrapped) => hsm.unwrap(wrapped),
      hash: hsm.info.oaepHash,
      tag: TAG_HSM,
    });
    const backend: CacheBackend = {
      name: "hsm",
      tag: TAG_HSM,
      async open() {},
      encrypt: async (plaintext) => cipher.encrypt(plaintext),
      decrypt: async (payload) => cipher.decrypt(payload),
      async close() {
        hsm.close();
      },
    };
    const notes = [
      pinned.changed
        ? `pinned the token's public key sha256:${pinned.fingerprint} in ${pinned.path}`
        : `the token's public key sha256:${pinned.fingerprint} was already pinned (${pinned.path})`,
    ];
    return { keyPath: hsm.publicKeyCachePath, backend, notes, publicKey: true };
  } catch (error) {
    hsm.close();
    throw error;
  }
}

/** The outcome of decrypting the cache file through its backend. */
export interface CacheVerifyReport {
  ok: boolean;
  entries?: number;
  /** ISO time setup wrote the file. */
  written_at?: string;
  /** A version 1 payload (loads empty). */
  legacy?: boolean;
  error?: { code: string; message: string; hint?: string };
}

/**
 * Decrypts the cache file with the configured backend (opened and closed here) and counts
 * its entries; a failure is reported, not thrown.
 */
export async function verifyCache(
  path: string,
  backendOf: () => Promise<CacheBackend | undefined>,
): Promise<CacheVerifyReport> {
  let backend: CacheBackend | undefined;
  try {
    backend = await backendOf();
    if (backend === undefined) {
      return {
        ok: false,
        error: {
          code: "cache.no_backend",
          message: "no cache backend is configured (or the cache is disabled)",
          hint: "set cache.backend (tpm, hsm or keyfile) and cache.enabled: true",
        },
      };
    }
    await backend.open();
    const decoded = await readCacheFile({ path, backend });
    if (decoded === undefined) {
      return { ok: false, error: { code: "cache.missing", message: `no cache file at ${path}` } };
    }
    return {
      ok: true,
      entries: decoded.entries.size,
      written_at: new Date(decoded.writtenAt * 1000).toISOString(),
      legacy: decoded.legacy,
    };
  } catch (error) {
    return {
      ok: false,
      error: {
        code: isPsiError(error) ? error.code : "cache.verify_failed",
        message: errorMessage(error),
        ...(isPsiError(error) && error.hint ? { hint: error.hint } : {}),
      },
    };
  } finally {
    await backend?.close().catch(() => {});
  }
}

/** `psi cache status`: the file's metadata and header, and optionally a verification. */
export interface CacheStatusReport {
  where: CacheLocations;
  file: CacheFileStatus;
  /** The backend the header names, when there is a header (`unknown` for a foreign tag). */
  tagBackend: string | undefined;
  /** The header's backend differs from `cache.backend`: serve cannot read the file. */
  mismatch: boolean;
  verify?: CacheVerifyReport;
  /** False when the file is unreadable, mismatched or failed verification. */
  ok: boolean;
  /** Seconds since the file was last written (never negative); absent without a file. */
  ageSeconds?: number;
}

/** Whole seconds from `mtimeMs` to `nowMs`, never negative (a clock set back reads 0). */
export function ageSeconds(mtimeMs: number, nowMs: number): number {
  return Math.max(0, Math.round((nowMs - mtimeMs) / 1000));
}

/**
 * The report in its machine form, as `psi cache status --json` prints it: snake_case keys,
 * null for what is unknown, the mode in octal, the write time in ISO 8601.
 */
export function cacheStatusJson(report: CacheStatusReport): Record<string, unknown> {
  const { where, file, verify } = report;
  return {
    path: where.cachePath,
    config: where.configFile ?? null,
    enabled: where.enabled,
    backend: where.configuredBackend ?? null,
    exists: file.exists,
    size: file.size ?? null,
    mode: file.mode === undefined ? null : file.mode.toString(8).padStart(4, "0"),
    last_written: file.mtimeMs === undefined ? null : new Date(file.mtimeMs).toISOString(),
    version: file.version ?? null,
    tag: file.tag ?? null,
    tag_backend: report.tagBackend ?? null,
    mismatch: report.mismatch,
    ...(file.error ? { error: file.error } : {}),
    ...(verify ? { verify } : {}),
  };
}

/**
 * Reads the cache file's header and metadata, and its age at `options.nowMs` (default
 * now); with `verifyWith`, also decrypts it.
 */
export async function cacheStatus(
  where: CacheLocations,
  verifyWith?: () => Promise<CacheBackend | undefined>,
  options: { nowMs?: number } = {},
): Promise<CacheStatusReport> {
  const file = await readCacheStatus(where.cachePath);
  const configured = where.configuredBackend;
  const mismatch =
    configured !== undefined && file.tag !== undefined && file.backend !== configured;
  const verify =
    verifyWith === undefined ? undefined : await verifyCache(where.cachePath, verifyWith);
  return {
    where,
    file,
    tagBackend: file.tag === undefined ? undefined : (file.backend ?? "unknown"),
    mismatch,
    ...(verify === undefined ? {} : { verify }),
    ok: !mismatch && file.error === undefined && (verify === undefined || verify.ok),
    ...(file.mtimeMs === undefined
      ? {}
      : { ageSeconds: ageSeconds(file.mtimeMs, options.nowMs ?? Date.now()) }),
  };
}

/** One `invalidate` argument resolved to its mapping. */
export interface InvalidateTarget {
  target: string;
  id: string;
  /** The Podman secret name, when the argument was one. */
  name?: string;
  mapping: Mapping;
}

async function readStoredMapping(stateDir: string, id: string): Promise<Mapping | undefined> {
  const bytes = await readMappingFile(stateDir, id);
  return bytes === undefined ? undefined : parseMapping(bytes, `mapping ${join(stateDir, id)}`);
}

/** What a mapping points at, without anything secret (a blob is never shown). */
export function describeMapping(mapping: Mapping): string {
  if (mapping.provider === "infisical") {
    return `infisical ${String(mapping["project"])}:${String(mapping["path"])} ${String(mapping["key"])}`;
  }
  return mapping.provider;
}

/** Options of {@link resolveInvalidateTargets}. */
export interface ResolveTargetsOptions {
  targets: string[];
  stateDir: string;
  env: Env;
  /** `--podman-socket`, when given. */
  podmanSocket?: string | undefined;
  /** Asked only when a target is not a secret ID: the scope and its default Podman socket. */
  podmanScope: () => Promise<{ scope: Scope; defaultSocket: string }>;
}

/**
 * A secret ID with a mapping in state_dir is taken as is; anything else is a Podman
 * secret name (`workload--KEY`), resolved to its ID through the Podman API. Returns the
 * targets in the order given; throws when one cannot be resolved (nothing is changed).
 */
export async function resolveInvalidateTargets(
  options: ResolveTargetsOptions,
): Promise<InvalidateTarget[]> {
  const { targets, stateDir } = options;
  const resolved = new Map<string, InvalidateTarget>();
  for (const target of targets) {
    const mapping =
      secretIdProblem(target) === undefined ? await readStoredMapping(stateDir, target) : undefined;
    if (mapping) resolved.set(target, { target, id: target, mapping });
  }
  const byName = targets.filter((target) => !resolved.has(target));
  if (byName.length > 0) {
    const { scope, defaultSocket } = await options.podmanScope();
    const { createPodmanClient, podmanSocketPath } = await import("@psi/podman");
    const socketPath = podmanSocketPath({
      flag: options.podmanSocket,
      env: options.env,
      defaultPath: defaultSocket,
    });
    let secrets: Awaited<ReturnType<ReturnType<typeof createPodmanClient>["listSecrets"]>>;
    try {
      secrets = await createPodmanClient({ socketPath, scope, timeoutMs: 10_000 }).listSecrets();
    } catch (error) {
      const podmanHint = isPsiError(error) && error.hint ? `${error.hint}; ` : "";
      throw new PsiError(
        "cache.invalidate_unresolved",
        `${byName.map((t) => `"${t}"`).join(", ")}: no mapping with that secret ID in ${stateDir}, and Podman is not ` +
          `reachable at ${socketPath} to resolve a secret name (${errorMessage(error)})`,
        {
          cause: error,
          hint: `${podmanHint}or pass the secret ID: podman secret inspect --format '{{.ID}}' NAME`,
        },
      );
    }
    for (const target of byName) {
      const secret = secrets.find((s) => s.name === target) ?? secrets.find((s) => s.id === target);
      if (!secret) {
        throw new PsiError(
          "cache.invalidate_unknown",
          `"${target}" is neither a secret ID with a mapping in ${stateDir} nor a Podman secret`,
          { hint: "list them with `podman secret ls` (names look like workload--KEY)" },
        );
      }
      const mapping = await readStoredMapping(stateDir, secret.id);
      if (!mapping) {
        throw new PsiError(
          "cache.invalidate_no_mapping",
          `Podman secret ${secret.name} (ID ${secret.id}, driver ${secret.driver}) has no mapping in ${stateDir}`,
          {
            hint: "PSI does not serve it (another driver, or another state_dir), so nothing of it is in the cache",
          },
        );
      }
      resolved.set(target, { target, id: secret.id, name: secret.name, mapping });
    }
  }
  // Report in the order the operator named them.
  return targets.map((target) => resolved.get(target) as InvalidateTarget);
}

/** What {@link invalidateCache} did. */
export interface InvalidateResult {
  path: string;
  /** False when there was no cache file (nothing was written). */
  exists: boolean;
  /** With `all`: how many entries were dropped. */
  removedAll?: number;
  /** Per target, in order: whether its entry was there (and is now gone). */
  removed: (InvalidateTarget & { removed: boolean })[];
  /** Entries left in the file. */
  entries: number;
}

/**
 * Drops entries from cache.enc (by resolved target, or every entry with `all`) and writes
 * it back atomically, keeping the HMAC key and written_at. `backend` is opened and closed here.
 */
export async function invalidateCache(options: {
  path: string;
  backend: CacheBackend | undefined;
  targets: InvalidateTarget[] | "all";
}): Promise<InvalidateResult> {
  const { path, backend, targets } = options;
  if (backend === undefined) {
    throw new PsiError(
      "cache.no_backend",
      "no cache backend is configured (or the cache is disabled), so the cache cannot be rewritten",
      { hint: "set cache.backend (tpm, hsm or keyfile) and cache.enabled: true" },
    );
  }
  const all = targets === "all";
  try {
    await backend.open();
    const decoded = await readCacheFile({ path, backend });
    if (decoded === undefined) return { path, exists: false, removed: [], entries: 0 };
    const { cacheKey } = await import("@psi/envelope");
    const entries = new Map(decoded.entries);
    const removed = all
      ? []
      : targets.map((t) => ({
          ...t,
          removed: entries.delete(cacheKey(decoded.hmacKey, t.mapping)),
        }));
    const removedAll = all ? entries.size : 0;
    if (all) entries.clear();
    const changed = removedAll > 0 || removed.some((r) => r.removed) || (all && decoded.legacy);
    if (changed) {
      // written_at stays: it says when setup last fetched, which invalidating does not change.
      await writeCacheFile({
        path,
        backend,
        contents: { hmacKey: decoded.hmacKey, entries, writtenAt: decoded.writtenAt },
      });
    }
    return { path, exists: true, ...(all ? { removedAll } : {}), removed, entries: entries.size };
  } finally {
    await backend.close();
  }
}

/** Options of {@link initHostCache}: {@link CacheInitOptions} with the host's configuration. */
export interface HostCacheInitOptions extends Omit<CacheInitOptions, "backend" | "where" | "hsm"> {
  /** The backend to provision; without one, the error lists them. */
  backend: string | undefined;
  /** Reads the configuration (undefined without one); asked only once the backend name is known good. */
  config: () => Promise<LoadedConfig | undefined>;
  uid: number;
}

/**
 * `psi cache init` on this host: checks the backend name before the configuration is
 * read (a typo is reported as such, whatever the file holds), then provisions the key
 * where the configuration (or the scope's defaults) says, with its nitrokeyhsm block for hsm.
 */
export async function initHostCache(options: HostCacheInitOptions): Promise<CacheInitResult> {
  const { backend, config, uid, ...rest } = options;
  if (backend === undefined) {
    throw new PsiError(
      "cache.backend_required",
      "psi cache init needs --backend; the backends are:\n" + listCacheBackends(),
      { hint: "for example: psi cache init --backend tpm" },
    );
  }
  assertCacheBackend(backend);
  const loaded = await config();
  return initCache({
    ...rest,
    backend,
    where: cacheLocations(loaded, { env: options.env, uid }),
    hsm: backend === "hsm" ? loaded?.config.providers?.nitrokeyhsm : undefined,
  });
}

/**
 * The JSON of `psi cache invalidate`: each target with its mapping's provider (not the
 * mapping), and with `all` how many entries were dropped.
 */
export function invalidateResultJson(result: InvalidateResult): Record<string, unknown> {
  const { path, entries } = result;
  if (!result.exists) return { path, exists: false, removed: [], entries };
  return {
    path,
    exists: true,
    ...(result.removedAll === undefined ? {} : { all: true, removed_count: result.removedAll }),
    removed: result.removed.map((r) => ({
      target: r.target,
      id: r.id,
      ...(r.name === undefined ? {} : { name: r.name }),
      provider: r.mapping.provider,
      removed: r.removed,
    })),
    entries,
  };
}

/** Options of {@link invalidateHostCache}. */
export interface HostInvalidateOptions extends Omit<ResolveTargetsOptions, "targets" | "stateDir"> {
  where: CacheLocations;
  /** Podman secret names or secret IDs, or every entry. */
  targets: string[] | "all";
  /** The configured cache backend, not opened (undefined when the cache is off or unset). */
  backend: () => Promise<CacheBackend | undefined>;
}

/**
 * `psi cache invalidate`: resolves the targets (IDs through state_dir, names through the
 * Podman API) before anything is read or written, then drops their entries.
 */
export async function invalidateHostCache(
  options: HostInvalidateOptions,
): Promise<InvalidateResult> {
  const { where, targets, backend, ...resolve } = options;
  const resolved =
    targets === "all"
      ? ("all" as const)
      : await resolveInvalidateTargets({ ...resolve, targets, stateDir: where.paths.stateDir });
  return invalidateCache({ path: where.cachePath, backend: await backend(), targets: resolved });
}
