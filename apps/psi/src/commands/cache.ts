import { randomBytes } from "node:crypto";
import { open, unlink } from "node:fs/promises";
import { dirname, join } from "node:path";
import { readCacheFile, readCacheStatus, writeCacheFile } from "@psi/cache";
import type { CacheBackend, Mapping, ScopePaths } from "@psi/core";
import {
  defaultPaths,
  ensureDir,
  errorMessage,
  isPsiError,
  MAX_MAPPING_BYTES,
  PsiError,
  parseMapping,
  readRegularFile,
  scopeForUid,
  secretIdProblem,
} from "@psi/core";
import { HMAC_KEY_LENGTH } from "@psi/envelope";
import { type Command, Option } from "commander";
import type { App } from "../app.js";
import { UsageError } from "../errors.js";
import { plural } from "../text.js";

/** Where `psi cache` works: the cache file, the config's directory and cache settings. */
export interface CacheLocations {
  paths: ScopePaths;
  /** `cache.path`, or `<state_dir>/cache.enc`. */
  cachePath: string;
  /** `cache.key_file`, or `<config_dir>/cache.keyfile`. */
  keyFile: string;
  /** `cache.backend` as configured (undefined without a config file or the key). */
  configuredBackend: string | undefined;
  /** The configuration file read, when there is one. */
  configFile: string | undefined;
}

/**
 * The cache's locations from the configuration, or the scope defaults when there is no
 * configuration file yet (`psi cache init` runs on hosts being provisioned).
 */
export async function cacheLocations(app: App): Promise<CacheLocations> {
  try {
    const loaded = await app.loadConfig();
    const { paths, config } = loaded;
    return {
      paths,
      cachePath: config.cache?.path ?? join(paths.stateDir, "cache.enc"),
      keyFile: config.cache?.key_file ?? join(paths.configDir, "cache.keyfile"),
      configuredBackend: config.cache?.backend,
      configFile: loaded.file,
    };
  } catch (error) {
    if (!isPsiError(error, "config.missing")) throw error;
    const paths = defaultPaths(scopeForUid(app.uid), app.env, app.uid);
    return {
      paths,
      cachePath: join(paths.stateDir, "cache.enc"),
      keyFile: join(paths.configDir, "cache.keyfile"),
      configuredBackend: undefined,
      configFile: undefined,
    };
  }
}

/** Options of `psi cache init`; backends read the ones they take. */
export interface CacheInitOptions {
  backend?: string;
  keyPath?: string;
  force?: boolean;
  [option: string]: unknown;
}

/** What an initializer provisioned: the key material's path and an opened backend over it. */
export interface CacheInitResult {
  keyPath: string;
  backend: CacheBackend;
  /** Extra lines for the operator (unit directives to add, ...). */
  notes?: string[];
  /** What `keyPath` holds when it is not a secret key (hsm: the token's public key). */
  publicKey?: boolean;
}

/** Provisions one backend's key; the empty cache is written by `psi cache init` afterwards. */
export type CacheInitializer = (
  app: App,
  where: CacheLocations,
  options: CacheInitOptions,
) => Promise<CacheInitResult>;

/** Per backend: a one-line description (for `psi cache init` without --backend) and its initializer. */
export const cacheInitializers: Record<string, { describe: string; init?: CacheInitializer }> = {
  tpm: {
    describe: "key sealed by this host's TPM through systemd-creds (recommended)",
    init: initTpm,
  },
  hsm: { describe: "key wrapped by the RSA key on a PKCS#11 token (Nitrokey HSM)", init: initHsm },
  keyfile: {
    describe: "key in a local file beside the data (development, CI, hosts without a TPM; weaker)",
    async init(_app, where, options) {
      const { initKeyfile, keyfileCacheBackendFromKey } = await import("@psi/cache-keyfile");
      const keyPath = options.keyPath ?? where.keyFile;
      const key = await initKeyfile({ path: keyPath, force: options.force === true });
      const backend = keyfileCacheBackendFromKey(key);
      key.fill(0);
      await backend.open();
      const notes =
        keyPath === where.keyFile
          ? []
          : [`set cache.key_file: ${keyPath} in the configuration so psi finds the key`];
      return { keyPath, backend, notes };
    },
  },
};

function listBackends(): string {
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

/** `psi cache init --backend B`: provision the key, then write an empty cache with it. */
export async function runCacheInit(app: App, options: CacheInitOptions): Promise<void> {
  if (options.backend === undefined) {
    throw new PsiError(
      "cache.backend_required",
      "psi cache init needs --backend; the backends are:\n" + listBackends(),
      {
        hint: "for example: psi cache init --backend tpm",
      },
    );
  }
  const entry = cacheInitializers[options.backend];
  if (entry === undefined) {
    throw new PsiError(
      "cache.unknown_backend",
      `unknown cache backend "${options.backend}"; the backends are:\n${listBackends()}`,
    );
  }
  if (entry.init === undefined) {
    throw new PsiError(
      "cache.init_unavailable",
      `psi cache init --backend ${options.backend} is not available in this build`,
    );
  }
  const where = await cacheLocations(app);
  // Check first, write last: a key written before the cache fails to write would make the
  // retry fail with "already exists".
  await assertWritableDir(dirname(where.cachePath));
  const { keyPath, backend, notes = [], publicKey } = await entry.init(app, where, options);
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
  if (app.globals().json) {
    app.printJson({
      backend: options.backend,
      key_path: keyPath,
      cache_path: where.cachePath,
      notes,
    });
    return;
  }
  app.print(
    publicKey
      ? `wrote an empty cache to ${where.cachePath}, encrypted to the token's public key ` +
          `(kept in ${keyPath}; the private key never leaves the token)`
      : `wrote the ${options.backend} cache key to ${keyPath} and an empty cache to ${where.cachePath}`,
  );
  for (const note of notes) app.print(`  note: ${note}`);
}

/** `psi cache ...` (SPEC §11): init here; status, refresh and invalidate join this group. */
export function registerCache(program: Command, app: App): void {
  const cache = program
    .command("cache")
    .description("the encrypted cache that keeps containers starting while a provider is down");
  cache
    .command("init")
    .description("provision the cache key for a backend and write an empty cache")
    .option("--backend <name>", `tpm, hsm or keyfile (without it: list them)`)
    .option(
      "--key-path <path>",
      "where the key goes (tpm: <config_dir>/cache.key; keyfile: cache.key_file or <config_dir>/cache.keyfile)",
    )
    .option(
      "--force",
      "replace an existing key (the existing cache becomes unreadable until the next setup)",
    )
    .addOption(
      new Option("--with-key <key>", "tpm: what systemd-creds seals with (default tpm2)").choices([
        "tpm2",
        "host",
        "tpm2+host",
      ]),
    )
    .option(
      "--tpm2-device <device>",
      "tpm: TPM device or TCTI, e.g. /dev/tpmrm0 or swtpm:port=2321 (default: systemd-creds picks)",
    )
    .action(async (options: CacheInitOptions) => {
      await runCacheInit(app, options);
    });
  registerCacheStatus(cache, app);
  registerCacheInvalidate(cache, app);
  registerCacheRefresh(cache, app);
}

/** `psi cache refresh`: setup for every provider; setup's code loads only when it runs. */
function registerCacheRefresh(cache: Command, app: App): void {
  cache
    .command("refresh")
    .description(
      "re-fetch every provider's secrets into the cache (= psi setup for every provider)",
    )
    .option("--podman-socket <path>", "Podman API socket (env PSI_PODMAN_SOCKET)")
    .option(
      "--socket <path>",
      "PSI's lookup socket, as given to psi install (env PSI_SOCKET; default: what the installed psi.conf names)",
    )
    .action(async (options: { podmanSocket?: string; socket?: string }) => {
      const { runSetupCommand } = await import("./setup.js");
      await runSetupCommand(app, {
        ...(options.podmanSocket === undefined ? {} : { podmanSocket: options.podmanSocket }),
        ...(options.socket === undefined ? {} : { socket: options.socket }),
      });
    });
}

// ---------------------------------------------------------------------------------------
// tpm and hsm init, status, invalidate. Heavy modules (PKCS#11, systemd-creds plumbing, the
// Podman client) load inside the actions, so `psi cache status` stays fast.

/** `--backend tpm`: 32 random bytes sealed by systemd-creds to <config_dir>/cache.key (or --key-path). */
async function initTpm(
  app: App,
  where: CacheLocations,
  options: CacheInitOptions,
): Promise<CacheInitResult> {
  const { initTpmKey, tpmCacheBackendFromKey, TPM_CREDENTIAL_NAME, TPM_WITH_KEYS } = await import(
    "@psi/cache-tpm"
  );
  const withKey = options["withKey"];
  if (withKey !== undefined && !TPM_WITH_KEYS.some((k) => k === withKey)) {
    throw new UsageError(`--with-key must be one of ${TPM_WITH_KEYS.join(", ")}`);
  }
  const tpm2Device = options["tpm2Device"];
  const defaultKeyPath = join(where.paths.configDir, "cache.key");
  const keyPath = options.keyPath ?? defaultKeyPath;
  const sealed = await initTpmKey({
    keyPath,
    ...(withKey === undefined ? {} : { withKey: withKey as (typeof TPM_WITH_KEYS)[number] }),
    ...(typeof tpm2Device === "string" ? { tpm2Device } : {}),
    force: options.force === true,
    env: app.env,
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

/** `--backend hsm`: open the token (PIN resolution), pin its public key, seal with it. */
async function initHsm(
  app: App,
  where: CacheLocations,
  options: CacheInitOptions,
): Promise<CacheInitResult> {
  const { openNitrokeyHsm, pinPublicKey } = await import("@psi/cache-hsm");
  const { hybridBackend, TAG_HSM } = await import("@psi/envelope");
  const config = await app.loadConfig().then(
    (loaded) => loaded.config.providers?.nitrokeyhsm,
    (error: unknown) => {
      if (isPsiError(error, "config.missing")) return undefined;
      throw error;
    },
  );
  const stateDir = where.paths.stateDir;
  const force = options.force === true;
  const hsm = await openNitrokeyHsm({
    config,
    stateDir,
    env: app.env,
    logger: app.logger(),
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

function ago(ms: number): string {
  const seconds = Math.max(0, Math.round(ms / 1000));
  if (seconds < 90) return `${seconds}s ago`;
  const minutes = Math.round(seconds / 60);
  if (minutes < 90) return `${minutes}min ago`;
  const hours = Math.round(minutes / 60);
  if (hours < 48) return `${hours}h ago`;
  return `${Math.round(hours / 24)}d ago`;
}

interface VerifyReport {
  ok: boolean;
  entries?: number;
  written_at?: string;
  legacy?: boolean;
  error?: { code: string; message: string; hint?: string };
}

async function verifyCache(app: App, path: string): Promise<VerifyReport> {
  let backend: Awaited<ReturnType<App["cacheBackend"]>>;
  try {
    backend = await app.cacheBackend();
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

/** `psi cache status [--verify]` (SPEC §11): header and file metadata; only --verify opens the backend. */
function registerCacheStatus(cache: Command, app: App): void {
  cache
    .command("status")
    .description(
      "show the cache file: path, backend, size, age, on-disk tag (header only; --verify decrypts)",
    )
    .option("--verify", "decrypt through the configured backend and count the entries")
    .action(async (options: { verify?: boolean }) => {
      const where = await cacheLocations(app);
      const path = where.cachePath;
      const configured = where.configuredBackend;
      const enabled =
        where.configFile === undefined
          ? false
          : ((await app.loadConfig()).config.cache?.enabled ?? true);
      const file = await readCacheStatus(path);
      const mismatch =
        configured !== undefined && file.tag !== undefined && file.backend !== configured;
      const verify = options.verify ? await verifyCache(app, path) : undefined;
      if (mismatch || file.error !== undefined || (verify !== undefined && !verify.ok))
        app.exitCode = 1;
      const tagName = file.tag === undefined ? undefined : (file.backend ?? "unknown");
      const hex = (n: number) => `0x${n.toString(16).padStart(2, "0")}`;
      if (app.reportJson()) {
        app.printJson({
          path,
          config: where.configFile ?? null,
          enabled,
          backend: configured ?? null,
          exists: file.exists,
          size: file.size ?? null,
          mode: file.mode === undefined ? null : file.mode.toString(8).padStart(4, "0"),
          last_written: file.mtimeMs === undefined ? null : new Date(file.mtimeMs).toISOString(),
          version: file.version ?? null,
          tag: file.tag ?? null,
          tag_backend: tagName ?? null,
          mismatch,
          ...(file.error ? { error: file.error } : {}),
          ...(verify ? { verify } : {}),
        });
        return;
      }
      const lines: [string, string][] = [
        ["path", path],
        ["config", where.configFile ?? "(no configuration file)"],
        ["enabled", enabled ? "yes" : "no"],
        ["backend", configured ?? "(none configured)"],
      ];
      if (!file.exists) {
        lines.push([
          "file",
          "does not exist (psi setup writes it; psi cache init creates an empty one)",
        ]);
      } else {
        if (file.size !== undefined) lines.push(["size", `${file.size} bytes`]);
        if (file.mtimeMs !== undefined) {
          lines.push([
            "last written",
            `${new Date(file.mtimeMs).toISOString()} (${ago(Date.now() - file.mtimeMs)})`,
          ]);
        }
        if (file.version !== undefined && file.tag !== undefined) {
          lines.push(["format", `PSIC version ${file.version}, tag ${hex(file.tag)} (${tagName})`]);
        }
        if (file.error) lines.push(["error", `${file.error.message}`]);
      }
      if (verify) {
        lines.push([
          "verify",
          verify.ok
            ? `ok: ${plural(verify.entries ?? 0, "entry")}, written_at ${verify.written_at}${verify.legacy ? " (legacy version 1 payload: loads empty)" : ""}`
            : `FAILED: ${verify.error?.message}`,
        ]);
        if (!verify.ok && verify.error?.hint) lines.push(["", `hint: ${verify.error.hint}`]);
      }
      const width = Math.max(...lines.map(([label]) => label.length));
      for (const [label, value] of lines) app.print(`${label.padEnd(width)}  ${value}`);
      if (mismatch) {
        app.print(
          `warning: the file was written by the ${tagName} backend (tag ${hex(file.tag ?? 0)}), but cache.backend is ${configured}: ` +
            `psi serve cannot read it. Run \`psi cache init --backend ${configured}\` (or psi setup) to rewrite it, ` +
            `or set cache.backend: ${tagName} in ${where.configFile}`,
        );
      }
    });
}

/** One `invalidate` argument resolved to its mapping. */
interface InvalidateTarget {
  target: string;
  id: string;
  /** The Podman secret name, when the argument was one. */
  name?: string;
  mapping: Mapping;
}

async function readMappingFile(stateDir: string, id: string): Promise<Mapping | undefined> {
  let bytes: Buffer;
  try {
    bytes = await readRegularFile(join(stateDir, id), {
      maxBytes: MAX_MAPPING_BYTES,
      what: `the mapping of secret ${id}`,
    });
  } catch (error) {
    if (isPsiError(error, "fs.not_found")) return undefined;
    throw error;
  }
  return parseMapping(bytes, `mapping ${join(stateDir, id)}`);
}

/** What a mapping points at, without anything secret (a blob is never shown). */
function describeMapping(mapping: Mapping): string {
  if (mapping.provider === "infisical") {
    return `infisical ${String(mapping["project"])}:${String(mapping["path"])} ${String(mapping["key"])}`;
  }
  return mapping.provider;
}

/**
 * A secret ID with a mapping in state_dir is taken as is; anything else is a Podman
 * secret name (`workload--KEY`), resolved to its ID through the Podman API.
 */
async function resolveTargets(
  app: App,
  targets: string[],
  stateDir: string,
  podmanSocket: string | undefined,
): Promise<InvalidateTarget[]> {
  const resolved = new Map<string, InvalidateTarget>();
  for (const target of targets) {
    const mapping =
      secretIdProblem(target) === undefined ? await readMappingFile(stateDir, target) : undefined;
    if (mapping) resolved.set(target, { target, id: target, mapping });
  }
  const byName = targets.filter((target) => !resolved.has(target));
  if (byName.length > 0) {
    const context = await app.context();
    const { createPodmanClient, podmanSocketPath } = await import("@psi/podman");
    const socketPath = podmanSocketPath({
      flag: podmanSocket,
      env: app.env,
      defaultPath: context.paths.podmanSocket,
    });
    let secrets: Awaited<ReturnType<ReturnType<typeof createPodmanClient>["listSecrets"]>>;
    try {
      secrets = await createPodmanClient({
        socketPath,
        scope: context.scope,
        timeoutMs: 10_000,
      }).listSecrets();
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
      const mapping = await readMappingFile(stateDir, secret.id);
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
  return targets.map((target) => resolved.get(target)!);
}

/** `psi cache invalidate <name|id>... | --all` (SPEC §11): drop entries from cache.enc, atomically. */
function registerCacheInvalidate(cache: Command, app: App): void {
  cache
    .command("invalidate")
    .description(
      "drop cached values: by Podman secret name (workload--KEY), by secret ID, or --all (keeps the HMAC key)",
    )
    .argument("[targets...]", "Podman secret names or secret IDs")
    .option("--all", "drop every entry")
    .option(
      "--podman-socket <path>",
      "Podman API socket to resolve names (env PSI_PODMAN_SOCKET; default: the scope's)",
    )
    .action(async (targets: string[], options: { all?: boolean; podmanSocket?: string }) => {
      if (options.all && targets.length > 0)
        throw new UsageError("give secret names/IDs or --all, not both");
      if (!options.all && targets.length === 0)
        throw new UsageError(
          "name the secrets to invalidate (Podman name or secret ID), or pass --all",
        );
      const where = await cacheLocations(app);
      const path = where.cachePath;
      const stateDir = where.paths.stateDir;
      const resolved = options.all
        ? []
        : await resolveTargets(app, targets, stateDir, options.podmanSocket);
      const backend = await app.cacheBackend();
      if (backend === undefined) {
        throw new PsiError(
          "cache.no_backend",
          "no cache backend is configured (or the cache is disabled), so the cache cannot be rewritten",
          {
            hint: "set cache.backend (tpm, hsm or keyfile) and cache.enabled: true",
          },
        );
      }
      const json = app.globals().json;
      try {
        await backend.open();
        const decoded = await readCacheFile({ path, backend });
        if (decoded === undefined) {
          if (json) app.printJson({ path, exists: false, removed: [], entries: 0 });
          else app.print(`no cache file at ${path}: nothing to invalidate`);
          return;
        }
        const { cacheKey } = await import("@psi/envelope");
        const entries = new Map(decoded.entries);
        const report = options.all
          ? []
          : resolved.map((t) => ({
              ...t,
              removed: entries.delete(cacheKey(decoded.hmacKey, t.mapping)),
            }));
        const removedAll = options.all ? entries.size : 0;
        if (options.all) entries.clear();
        const changed =
          removedAll > 0 || report.some((r) => r.removed) || (options.all && decoded.legacy);
        if (changed) {
          // written_at stays: it says when setup last fetched, which invalidating does not change.
          await writeCacheFile({
            path,
            backend,
            contents: { hmacKey: decoded.hmacKey, entries, writtenAt: decoded.writtenAt },
          });
        }
        if (json) {
          app.printJson({
            path,
            exists: true,
            ...(options.all ? { all: true, removed_count: removedAll } : {}),
            removed: report.map((r) => ({
              target: r.target,
              id: r.id,
              ...(r.name === undefined ? {} : { name: r.name }),
              provider: r.mapping.provider,
              removed: r.removed,
            })),
            entries: entries.size,
          });
          return;
        }
        if (options.all) {
          app.print(
            `removed all ${plural(removedAll, "entry")} from ${path} (the HMAC key is kept)`,
          );
          return;
        }
        for (const r of report) {
          const who = r.name === undefined ? r.id : `${r.name} (ID ${r.id})`;
          app.print(
            r.removed
              ? `removed ${who}: ${describeMapping(r.mapping)}`
              : `${who} was not in the cache (${describeMapping(r.mapping)})`,
          );
        }
        app.print(`${plural(entries.size, "entry")} left in ${path}`);
      } finally {
        await backend.close();
      }
    });
}
