import {
  describeMapping,
  initHostCache,
  invalidateHostCache,
  invalidateResultJson,
} from "@psi/ops";
import { type Command, Option } from "commander";
import type { App } from "../app.js";
import { UsageError } from "../errors.js";
import { installedSocketOption, podmanSocketOption } from "../options.js";
import { plural } from "../text.js";
import { locations, runCacheStatus } from "./cache-status.js";

// `psi cache init / status / invalidate / refresh` (SPEC §11): @psi/ops does the work;
// this file parses the flags and renders the results.

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
    ...options,
    backend: options.backend,
    config: () => app.optionalConfig(),
    env: app.env,
    uid: app.uid,
    logger: app.logger(),
  });
  const { backend, keyPath, cachePath, notes } = result;
  app.output({ backend, keyPath, cachePath, notes }, () =>
    [
      result.publicKey
        ? `wrote an empty cache to ${cachePath}, encrypted to the token's public key ` +
          `(kept in ${keyPath}; the private key never leaves the token)`
        : `wrote the ${backend} cache key to ${keyPath} and an empty cache to ${cachePath}`,
      ...notes.map((note) => `  note: ${note}`),
    ].join("\n"),
  );
}

/** `psi cache init|status|invalidate|refresh` (SPEC §11). */
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
    .action((options: InitFlags) => runCacheInit(app, options));
  registerCacheStatus(cache, app);
  registerCacheInvalidate(cache, app);
  // Setup for every provider; setup's code loads only when it runs.
  cache
    .command("refresh")
    .description(
      "re-fetch every provider's secrets into the cache (= psi setup for every provider)",
    )
    .option("--podman-socket <path>", "Podman API socket (env PSI_PODMAN_SOCKET)")
    .addOption(installedSocketOption())
    .action(async (options: { podmanSocket?: string; socket?: string }) => {
      const { runSetupCommand } = await import("./setup.js");
      await runSetupCommand(app, options);
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
      await runCacheStatus(app, options);
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
    .addOption(podmanSocketOption("to resolve names"))
    .action(async (targets: string[], options: { all?: boolean; podmanSocket?: string }) => {
      if (options.all && targets.length > 0)
        throw new UsageError("give secret names/IDs or --all, not both");
      if (!options.all && targets.length === 0)
        throw new UsageError(
          "name the secrets to invalidate (Podman name or secret ID), or pass --all",
        );
      const result = await invalidateHostCache({
        where: await locations(app),
        targets: options.all ? "all" : targets,
        env: app.env,
        podmanSocket: options.podmanSocket,
        podmanScope: async () => {
          const context = await app.context();
          return { scope: context.scope, defaultSocket: context.paths.podmanSocket };
        },
        backend: () => app.cacheBackend(),
      });
      const { path } = result;
      app.output(invalidateResultJson(result), () => {
        if (!result.exists) return `no cache file at ${path}: nothing to invalidate`;
        if (options.all)
          return `removed all ${plural(result.removedAll ?? 0, "entry")} from ${path} (the HMAC key is kept)`;
        const lines = result.removed.map((r) => {
          const who = r.name === undefined ? r.id : `${r.name} (ID ${r.id})`;
          return r.removed
            ? `removed ${who}: ${describeMapping(r.mapping)}`
            : `${who} was not in the cache (${describeMapping(r.mapping)})`;
        });
        return [...lines, `${plural(result.entries, "entry")} left in ${path}`].join("\n");
      });
    });
}
