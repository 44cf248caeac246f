import {
  type CacheLocations,
  cacheLocations,
  cacheStatus,
  describeMapping,
  initHostCache,
  invalidateHostCache,
} from "@psi/ops";
import { type Command, Option } from "commander";
import type { App } from "../app.js";
import { UsageError } from "../errors.js";
import { formatAge, hexByte, labelled, octalMode, plural } from "../text.js";

// `psi cache init / status / invalidate` (SPEC §11): @psi/ops does the work; this file
// parses the flags and renders the results.

/** The cache's locations from the configuration, or the scope's defaults without one. */
async function locations(app: App): Promise<CacheLocations> {
  return cacheLocations(await app.optionalConfig(), { env: app.env, uid: app.uid });
}

/** `psi cache init` flags, as commander parses them. */
interface InitFlags {
  backend?: string;
  keyPath?: string;
  force?: boolean;
  withKey?: string;
  tpm2Device?: string;
}

/** `psi cache init --backend B`: provision the key, then write an empty cache with it. */
async function runCacheInit(app: App, options: InitFlags): Promise<void> {
  const result = await initHostCache({
    backend: options.backend,
    config: () => app.optionalConfig(),
    env: app.env,
    uid: app.uid,
    logger: app.logger(),
    keyPath: options.keyPath,
    force: options.force,
    withKey: options.withKey,
    tpm2Device: options.tpm2Device,
  });
  if (app.globals().json) {
    app.printJson({
      backend: result.backend,
      key_path: result.keyPath,
      cache_path: result.cachePath,
      notes: result.notes,
    });
    return;
  }
  app.print(
    result.publicKey
      ? `wrote an empty cache to ${result.cachePath}, encrypted to the token's public key ` +
          `(kept in ${result.keyPath}; the private key never leaves the token)`
      : `wrote the ${result.backend} cache key to ${result.keyPath} and an empty cache to ${result.cachePath}`,
  );
  for (const note of result.notes) app.print(`  note: ${note}`);
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
    .action(async (options: InitFlags) => {
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

/** `psi cache status [--verify]` (SPEC §11): header and file metadata; only --verify opens the backend. */
function registerCacheStatus(cache: Command, app: App): void {
  cache
    .command("status")
    .description(
      "show the cache file: path, backend, size, age, on-disk tag (header only; --verify decrypts)",
    )
    .option("--verify", "decrypt through the configured backend and count the entries")
    .action(async (options: { verify?: boolean }) => {
      const where = await locations(app);
      const report = await cacheStatus(
        where,
        options.verify ? () => app.cacheBackend() : undefined,
      );
      const { file, mismatch, verify, tagBackend: tagName } = report;
      const path = where.cachePath;
      const configured = where.configuredBackend;
      const enabled = where.enabled;
      if (!report.ok) app.exitCode = 1;
      if (app.reportJson()) {
        app.printJson({
          path,
          config: where.configFile ?? null,
          enabled,
          backend: configured ?? null,
          exists: file.exists,
          size: file.size ?? null,
          mode: file.mode === undefined ? null : octalMode(file.mode),
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
            `${new Date(file.mtimeMs).toISOString()} (${formatAge(Math.max(0, Math.round((Date.now() - file.mtimeMs) / 1000)))} ago)`,
          ]);
        }
        if (file.version !== undefined && file.tag !== undefined) {
          lines.push([
            "format",
            `PSIC version ${file.version}, tag ${hexByte(file.tag)} (${tagName})`,
          ]);
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
      for (const line of labelled(lines)) app.print(line);
      if (mismatch) {
        app.print(
          `warning: the file was written by the ${tagName} backend (tag ${hexByte(file.tag ?? 0)}), but cache.backend is ${configured}: ` +
            `psi serve cannot read it. Run \`psi cache init --backend ${configured}\` (or psi setup) to rewrite it, ` +
            `or set cache.backend: ${tagName} in ${where.configFile}`,
        );
      }
    });
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
      const where = await locations(app);
      const path = where.cachePath;
      const result = await invalidateHostCache({
        where,
        targets: options.all ? "all" : targets,
        env: app.env,
        podmanSocket: options.podmanSocket,
        podmanScope: async () => {
          const context = await app.context();
          return { scope: context.scope, defaultSocket: context.paths.podmanSocket };
        },
        backend: () => app.cacheBackend(),
      });
      const json = app.globals().json;
      if (!result.exists) {
        if (json) app.printJson({ path, exists: false, removed: [], entries: 0 });
        else app.print(`no cache file at ${path}: nothing to invalidate`);
        return;
      }
      const report = result.removed;
      const removedAll = result.removedAll ?? 0;
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
          entries: result.entries,
        });
        return;
      }
      if (options.all) {
        app.print(`removed all ${plural(removedAll, "entry")} from ${path} (the HMAC key is kept)`);
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
      app.print(`${plural(result.entries, "entry")} left in ${path}`);
    });
}
