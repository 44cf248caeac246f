import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { saveCache } from "@psi/cache";
import { initKeyfile, keyfileCacheBackendFromKey } from "@psi/cache-keyfile";
import { defaultPaths, errorMessage, PsiError } from "@psi/core";
import { createLookupServer, type LookupServer } from "@psi/lookup-server";
import { sealLocal } from "@psi/provider-local";
import { renderDriverConf } from "@psi/unitgen";
import type { Command } from "commander";
import { type App, createApp } from "../app.js";
import { openServeCache } from "./serve.js";

// Node 24's ESM facade for node:http reads every export, and three of them are getters
// that load undici (~30 ms on every psi start); require() keeps them lazy.
const { request } = createRequire(import.meta.url)("node:http") as typeof import("node:http");

/** The demo's sample secrets: made-up values, shown in full (they protect nothing). */
const SAMPLES: readonly { name: string; value: string }[] = [
  { name: "demo--GREETING", value: "hello from psi" },
  { name: "demo--DB_PASSWORD", value: "correct-horse-battery-staple" },
  { name: "demo--API_KEY", value: "sk-demo-0123456789abcdef" },
];

/** A GET on the lookup socket, as the shell driver's curl does it. */
function socketGet(socketPath: string, path: string): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { socketPath, path, method: "GET", headers: { Host: "localhost" } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end();
  });
}

function run(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  input?: Uint8Array,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { env, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk;
    });
    child.on("error", (error) => resolve({ code: -1, stdout, stderr: error.message }));
    child.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(input);
  });
}

async function findFile(root: string, name: string, within: string): Promise<string | undefined> {
  const queue = [root];
  while (queue.length > 0) {
    const current = queue.shift()!;
    const entries = await readdir(current, { withFileTypes: true }).catch(() => []);
    for (const entry of entries) {
      const path = join(current, entry.name);
      if (entry.isDirectory()) queue.push(path);
      else if (entry.name === name && path.includes(within)) return path;
    }
  }
  return undefined;
}

function shellQuote(text: string): string {
  return /^[A-Za-z0-9_./@%+=:,-]+$/.test(text) ? text : `'${text.replace(/'/g, "'\\''")}'`;
}

/**
 * The Podman part of the walkthrough: a shell-driver secret created with the podman CLI
 * (the driver's store goes through the demo socket) and a `podman create` that makes
 * Podman resolve it, in storage isolated under the demo directory. Returns the value
 * Podman received, or a reason it could not run here.
 */
async function throughPodman(
  app: App,
  dir: string,
  socket: string,
  mapping: Uint8Array,
  name: string,
): Promise<{ value?: Buffer; skipped?: string }> {
  const version = await run("podman", ["--version"], process.env);
  if (version.code !== 0) return { skipped: "podman is not installed" };
  const conf = join(dir, "podman", "containers.conf");
  await mkdir(join(dir, "podman", "rootfs"), { recursive: true });
  await writeFile(conf, renderDriverConf({ socket }));
  const env = { ...app.env, CONTAINERS_CONF: conf } as NodeJS.ProcessEnv;
  const flags = [
    "--root",
    join(dir, "podman", "storage"),
    "--runroot",
    join(dir, "podman", "run"),
    "--storage-driver",
    "vfs",
  ];
  const say = (line: string) => app.print(`   $ ${line}`);
  say(`psi local store --mapping-only ${name} | podman secret create --driver shell ${name} -`);
  // `podman secret create NAME -` insists on a pipe; Node gives children a socketpair.
  const created = await run(
    "sh",
    ["-c", 'cat | podman "$@"', "sh", ...flags, "secret", "create", "--driver", "shell", name, "-"],
    env,
    mapping,
  );
  if (created.code !== 0)
    return { skipped: `podman secret create failed: ${created.stderr.trim()}` };
  say(`podman create --secret ${name},type=mount,target=/run/secrets/db --rootfs <dir> /bin/true`);
  const container = await run(
    "podman",
    [
      ...flags,
      "create",
      "--secret",
      `${name},type=mount,target=/run/secrets/db`,
      "--rootfs",
      join(dir, "podman", "rootfs"),
      "/bin/true",
    ],
    env,
  );
  if (container.code !== 0) return { skipped: `podman create failed: ${container.stderr.trim()}` };
  const id = container.stdout.trim();
  const file = await findFile(join(dir, "podman", "storage"), name, id);
  const value = file === undefined ? undefined : await readFile(file);
  await run("podman", [...flags, "rm", "--force", id], env);
  await run("podman", [...flags, "secret", "rm", name], env);
  return value === undefined
    ? { skipped: "Podman wrote no secret file for the container" }
    : { value };
}

/** `psi demo [--socket PATH] [--once] [--no-podman]` (SPEC §8.3, §14). */
export function registerDemo(program: Command, app: App): void {
  program
    .command("demo")
    .description(
      "run a working psi serve with sample local secrets: no configuration, no external service " +
        "(everything lives in a temporary directory, removed on exit)",
    )
    .option(
      "--socket <path>",
      "socket to serve on (default: psi-demo.sock in the user-scope socket directory)",
    )
    .option("--once", "exit after the walkthrough instead of serving until Ctrl-C")
    .option("--no-podman", "skip the Podman part even when podman is installed")
    .action(async (options: { socket?: string; once?: boolean; podman: boolean }) => {
      const socket =
        options.socket ??
        join(dirname(defaultPaths("user", app.env, app.uid).socket), "psi-demo.sock");
      // Ctrl-C at any point ends the demo through the cleanup below, never mid-way.
      let onSignal: (() => void) | undefined;
      const interrupted = new Promise<void>((resolve) => {
        onSignal = () => resolve();
      });
      process.on("SIGINT", onSignal!);
      process.on("SIGTERM", onSignal!);
      const dir = await mkdtemp(join(tmpdir(), "psi-demo-"));
      let server: LookupServer | undefined;
      let closeProviders: (() => Promise<void>) | undefined;
      try {
        const configPath = join(dir, "config.yaml");
        const stateDir = join(dir, "state");
        const keyFile = join(dir, "cache.keyfile");
        await writeFile(
          configPath,
          `# psi demo: sealed local secrets, keyfile cache backend\nstate_dir: ${stateDir}\n` +
            `providers:\n  local: {}\ncache:\n  backend: keyfile\n  key_file: ${keyFile}\n`,
        );
        app.print(`PSI demo: everything lives in ${dir} and is removed on exit.\n`);
        app.print(
          `1. Configuration ${configPath}: the local provider, sealed with the keyfile cache backend.`,
        );

        const key = await initKeyfile({ path: keyFile });
        const backend = keyfileCacheBackendFromKey(key);
        key.fill(0);
        await backend.open();
        await mkdir(stateDir, { recursive: true, mode: 0o700 });
        const mappings = new Map<string, Uint8Array>();
        for (const sample of SAMPLES) {
          const mapping = await sealLocal(backend, Buffer.from(sample.value));
          mappings.set(sample.name, mapping);
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
        await backend.close();
        app.print(
          `2. Sealed ${SAMPLES.length} sample secrets (AES-256-GCM) as mapping files in ${stateDir}:`,
        );
        for (const sample of SAMPLES) app.print(`     ${sample.name}`);

        // The demo's own serve: the same wiring as `psi serve`, on the demo configuration.
        // PSI_* overrides and systemd credentials of the caller must not leak into the demo.
        const demoEnv = Object.fromEntries(
          Object.entries(app.env).filter(
            ([name]) => !name.startsWith("PSI_") && name !== "CREDENTIALS_DIRECTORY",
          ),
        );
        const demo = createApp(app.io, { ...demoEnv, PSI_CONFIG: configPath }, app.uid);
        demo.setGlobals(app.globals());
        const providers = await demo.openProviders();
        const { cache, backend: cacheBackend } = await openServeCache(
          demo,
          await demo.loadConfig(),
          demo.logger(),
        );
        closeProviders = async () => {
          await Promise.allSettled([...providers.values()].map((provider) => provider.close()));
          await cacheBackend?.close();
          // stop watching cache.enc before the directory goes
          cache?.close();
        };
        if (!providers.has("local")) {
          throw new PsiError(
            "demo.local_failed",
            "the demo's local provider did not open (see the log above)",
          );
        }
        server = createLookupServer({
          stateDir,
          providers,
          cache,
          logger: demo.logger(),
          metrics: true,
        });
        await server.listen({ path: socket });
        app.print(`3. psi serve is listening on ${socket}\n`);

        const first = SAMPLES[0]!;
        app.print("4. A lookup through the socket, as Podman's shell driver does it:");
        app.print(`   $ curl -sf --unix-socket ${socket} http://localhost/lookup/${first.name}`);
        const answer = await socketGet(socket, `/lookup/${first.name}`);
        if (answer.status !== 200) {
          throw new PsiError(
            "demo.lookup_failed",
            `the demo lookup answered ${answer.status}: ${answer.body.toString()}`,
          );
        }
        app.print(`   ${answer.body.toString("utf8")}\n`);

        if (options.podman) {
          app.print(
            "5. The same through Podman (shell driver, storage isolated in the demo directory):",
          );
          const podmanSecret = "psi-demo-db-password";
          const db = SAMPLES[1]!;
          const result = await throughPodman(
            app,
            dir,
            socket,
            mappings.get(db.name)!,
            podmanSecret,
          ).catch((error: unknown) => ({ skipped: errorMessage(error), value: undefined }));
          if (result.value !== undefined) {
            app.print(
              `   Podman received for /run/secrets/db: ${result.value.toString("utf8")} (${result.value.length} bytes)\n`,
            );
          } else {
            app.print(`   (skipped: ${result.skipped})\n`);
          }
        }

        const q = (text: string) => shellQuote(text);
        app.print("Try it yourself from another terminal:");
        app.print(`  curl -s --unix-socket ${q(socket)} http://localhost/healthz`);
        app.print(`  curl -s --unix-socket ${q(socket)} http://localhost/list`);
        for (const sample of SAMPLES) {
          app.print(`  curl -sf --unix-socket ${q(socket)} http://localhost/lookup/${sample.name}`);
        }
        app.print(
          `  printf %s 'my own value' | psi -c ${q(configPath)} local store --mapping-only mine \\\n` +
            `    | curl -sf --unix-socket ${q(socket)} -X POST --data-binary @- http://localhost/store/mine`,
        );
        app.print(`  curl -sf --unix-socket ${q(socket)} http://localhost/lookup/mine`);
        app.print(`  curl -s --unix-socket ${q(socket)} http://localhost/metrics`);

        if (options.once) return;
        app.print("\nServing until Ctrl-C.");
        await interrupted;
      } finally {
        process.off("SIGINT", onSignal!);
        process.off("SIGTERM", onSignal!);
        await server?.close();
        await closeProviders?.();
        // The server removed its socket; the directory holds everything else.
        await rm(dir, { recursive: true, force: true });
      }
    });
}
