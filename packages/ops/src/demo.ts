import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { saveCache } from "@psi/cache";
import { initKeyfile, keyfileCacheBackendFromKey } from "@psi/cache-keyfile";
import type { CacheBackend, LoadedConfig, Logger, Provider } from "@psi/core";
import { defaultPaths, type Env, errorMessage, PsiError } from "@psi/core";
import {
  createLookupServer,
  type LookupServer,
  openConfiguredServeCache,
} from "@psi/lookup-server";
import { sealLocal } from "@psi/provider-local";
import { runTool } from "@psi/setup";
import { renderDriverConf } from "@psi/unitgen";
import { getOnSocket } from "./socket.js";

// `psi demo`'s host: a throwaway directory with a configuration (local provider, keyfile
// cache backend), sample secrets sealed as mapping files and an empty cache file, and the
// Podman walkthrough in storage isolated under it. The frontend runs serve over it.

/** The demo's sample secrets: made-up values, shown in full (they protect nothing). */
export const DEMO_SAMPLES: readonly { name: string; value: string }[] = [
  { name: "demo--GREETING", value: "hello from psi" },
  { name: "demo--DB_PASSWORD", value: "correct-horse-battery-staple" },
  { name: "demo--API_KEY", value: "sk-demo-0123456789abcdef" },
];

/** A prepared demo directory. */
export interface DemoHost {
  dir: string;
  configPath: string;
  stateDir: string;
  keyFile: string;
  /** Each sample with its sealed mapping (what `psi local store --mapping-only` prints). */
  samples: { name: string; value: string; mapping: Uint8Array }[];
  /** Removes the directory and everything in it. */
  remove(): Promise<void>;
}

/** The demo's default socket: psi-demo.sock in the user scope's socket directory. */
export function demoSocketPath(env: Env, uid: number): string {
  return join(dirname(defaultPaths("user", env, uid).socket), "psi-demo.sock");
}

/**
 * Creates the demo directory (under `root`, default the system's temp directory): the
 * configuration, a keyfile, the samples sealed as 0600 mapping files and an empty cache.
 * On failure the directory is removed again.
 */
export async function prepareDemoHost(options: { root?: string } = {}): Promise<DemoHost> {
  const dir = await mkdtemp(join(options.root ?? tmpdir(), "psi-demo-"));
  const remove = () => rm(dir, { recursive: true, force: true });
  try {
    const configPath = join(dir, "config.yaml");
    const stateDir = join(dir, "state");
    const keyFile = join(dir, "cache.keyfile");
    await writeFile(
      configPath,
      `# psi demo: sealed local secrets, keyfile cache backend\nstate_dir: ${stateDir}\n` +
        `providers:\n  local: {}\ncache:\n  backend: keyfile\n  key_file: ${keyFile}\n`,
    );
    const key = await initKeyfile({ path: keyFile });
    const backend = keyfileCacheBackendFromKey(key);
    key.fill(0);
    await backend.open();
    try {
      await mkdir(stateDir, { recursive: true, mode: 0o700 });
      const samples: DemoHost["samples"] = [];
      for (const sample of DEMO_SAMPLES) {
        const mapping = await sealLocal(backend, Buffer.from(sample.value));
        samples.push({ ...sample, mapping });
        await writeFile(join(stateDir, sample.name), mapping, { mode: 0o600 });
      }
      // An empty cache file, as `psi cache init` leaves it: serve loads it at startup.
      await saveCache({
        path: join(stateDir, "cache.enc"),
        backend,
        previous: null,
        fetched: [],
        prune: true,
      });
      return { dir, configPath, stateDir, keyFile, samples, remove };
    } finally {
      await backend.close();
    }
  } catch (error) {
    await remove();
    throw error;
  }
}

async function findFile(root: string, name: string, within: string): Promise<string | undefined> {
  const queue = [root];
  while (queue.length > 0) {
    const current = queue.shift() as string;
    const entries = await readdir(current, { withFileTypes: true }).catch(() => []);
    for (const entry of entries) {
      const path = join(current, entry.name);
      if (entry.isDirectory()) queue.push(path);
      else if (entry.name === name && path.includes(within)) return path;
    }
  }
  return undefined;
}

/** Options of {@link demoThroughPodman}. */
export interface DemoPodmanOptions {
  /** The prepared demo: Podman's storage goes under its directory, its DB password sample is used. */
  host: Pick<DemoHost, "dir" | "samples">;
  /** The lookup socket the shell driver calls. */
  socket: string;
  env: Env;
  /** Each command as the walkthrough shows it, before it runs. */
  onCommand?: (line: string) => void;
}

/** What the Podman walkthrough showed: the value the container got at `target`, or why it was skipped. */
export interface DemoPodmanResult {
  /** Where the container mounts the secret. */
  target: string;
  /** The value Podman resolved through the demo socket. */
  value?: Buffer;
  /** Why the walkthrough could not run here (no podman, a command failed, ...). */
  skipped?: string;
}

// The walkthrough's secret: the DB password sample, under a Podman name of its own.
const PODMAN_SAMPLE = "demo--DB_PASSWORD";
const PODMAN_SECRET = "psi-demo-db-password";
const PODMAN_TARGET = "/run/secrets/db";

/**
 * The Podman part of the walkthrough: a shell-driver secret (the DB password sample)
 * created with the podman CLI (the driver's store goes through the demo socket) and a
 * `podman create` that makes Podman resolve it, in storage isolated under the demo
 * directory. Never throws: what keeps it from running here is reported as `skipped`.
 */
export async function demoThroughPodman(options: DemoPodmanOptions): Promise<DemoPodmanResult> {
  try {
    return { target: PODMAN_TARGET, ...(await throughPodman(options)) };
  } catch (error) {
    return { target: PODMAN_TARGET, skipped: errorMessage(error) };
  }
}

async function throughPodman(
  options: DemoPodmanOptions,
): Promise<{ value?: Buffer; skipped?: string }> {
  const { host, socket } = options;
  const { dir } = host;
  const name = PODMAN_SECRET;
  const sample = host.samples.find((candidate) => candidate.name === PODMAN_SAMPLE);
  if (sample === undefined) return { skipped: `the demo has no ${PODMAN_SAMPLE} sample` };
  const say = options.onCommand ?? (() => {});
  const version = await runTool("podman", ["--version"], options.env, 0);
  if (!version.ok) return { skipped: "podman is not installed" };
  const conf = join(dir, "podman", "containers.conf");
  await mkdir(join(dir, "podman", "rootfs"), { recursive: true });
  await writeFile(conf, renderDriverConf({ socket }));
  const env = { ...options.env, CONTAINERS_CONF: conf } as NodeJS.ProcessEnv;
  const flags = [
    "--root",
    join(dir, "podman", "storage"),
    "--runroot",
    join(dir, "podman", "run"),
    "--storage-driver",
    "vfs",
  ];
  say(`psi local store --mapping-only ${name} | podman secret create --driver shell ${name} -`);
  // `podman secret create NAME -` insists on a pipe; Node gives children a socketpair.
  const created = await runTool(
    "sh",
    ["-c", 'cat | podman "$@"', "sh", ...flags, "secret", "create", "--driver", "shell", name, "-"],
    env,
    0,
    sample.mapping,
  );
  if (!created.ok) return { skipped: `podman secret create failed: ${created.output}` };
  const secret = `${name},type=mount,target=${PODMAN_TARGET}`;
  say(`podman create --secret ${secret} --rootfs <dir> /bin/true`);
  const container = await runTool(
    "podman",
    [
      ...flags,
      "create",
      "--secret",
      secret,
      "--rootfs",
      join(dir, "podman", "rootfs"),
      "/bin/true",
    ],
    env,
    0,
  );
  if (!container.ok) return { skipped: `podman create failed: ${container.output}` };
  const id = container.stdout.trim();
  const file = await findFile(join(dir, "podman", "storage"), name, id);
  const value = file === undefined ? undefined : await readFile(file);
  await runTool("podman", [...flags, "rm", "--force", id], env, 0);
  await runTool("podman", [...flags, "secret", "rm", name], env, 0);
  return value === undefined
    ? { skipped: "Podman wrote no secret file for the container" }
    : { value };
}

/**
 * The environment the demo's serve reads: the caller's without PSI_* overrides and
 * systemd credentials (they must not leak into the demo), with PSI_CONFIG at its configuration.
 */
export function demoEnvironment(env: Env, configPath: string): Env {
  const kept = Object.entries(env).filter(
    ([name]) => !name.startsWith("PSI_") && name !== "CREDENTIALS_DIRECTORY",
  );
  return { ...Object.fromEntries(kept), PSI_CONFIG: configPath };
}

/** Options of {@link startDemoServe}. */
export interface DemoServeOptions {
  /** The demo configuration, loaded from the host's configPath. */
  loaded: LoadedConfig;
  socket: string;
  logger: Logger;
  /** Opens the configured providers (the frontend's wiring); the local one must open. */
  openProviders: () => Promise<ReadonlyMap<string, Provider>>;
  /** Opens the configured cache backend (the keyfile). */
  openCacheBackend: () => Promise<CacheBackend | undefined>;
}

/** The demo's running serve and what closes it (server, providers, cache and backend). */
export interface DemoServe {
  server: LookupServer;
  close(): Promise<void>;
}

/**
 * serve over the demo host, as `psi serve` answers (metrics on), listening on `socket`.
 * Throws `demo.local_failed` when the local provider did not open; whatever opened is
 * closed again on failure.
 */
export async function startDemoServe(options: DemoServeOptions): Promise<DemoServe> {
  const { loaded, logger } = options;
  const providers = await options.openProviders();
  const { cache, backend } = await openConfiguredServeCache(
    loaded,
    logger,
    options.openCacheBackend,
  );
  let server: LookupServer | undefined;
  const close = async () => {
    await server?.close();
    await Promise.allSettled([...providers.values()].map((provider) => provider.close()));
    await backend?.close();
    // stop watching cache.enc before the directory goes
    cache?.close();
  };
  try {
    if (!providers.has("local")) {
      throw new PsiError(
        "demo.local_failed",
        "the demo's local provider did not open (see the log above)",
      );
    }
    server = createLookupServer({
      stateDir: loaded.paths.stateDir,
      providers,
      cache,
      logger,
      metrics: true,
    });
    await server.listen({ path: options.socket });
    return { server, close };
  } catch (error) {
    await close();
    throw error;
  }
}

/** The demo's lookup of `name` through `socket`, as the shell driver does it; the value as text. */
export async function demoLookup(socket: string, name: string): Promise<string> {
  const answer = await getOnSocket(socket, `/lookup/${name}`);
  if (answer.status !== 200) {
    throw new PsiError(
      "demo.lookup_failed",
      `the demo lookup answered ${answer.status}: ${answer.body}`,
    );
  }
  return answer.body;
}
