// Setup of 50 workloads × 10 secrets against an Infisical that answers every request after
// 20 ms (SPEC §13): runSetup at its default concurrency against the same setup with
// concurrency 1 (every request one after another), in the same run, with a real Podman
// service whose shell driver calls a running `psi serve` (built CLI). Goal: ratio >= 5.
//
// Two situations, both measured:
// - refresh: the secrets are registered already (every boot after the first, every
//   refresh timer run): listings, cache write, drop-in checks; Podman only lists;
// - first run: empty Podman, every secret is created through the API. Podman 4.3
//   serializes secret writes behind one lock (secrets.json), so this one is bounded by
//   Podman, not by PSI.
//
// The fake Infisical runs in its own process (node --experimental-transform-types on the
// testkit source); everything listens on loopback or Unix sockets in a temp dir and stops
// by itself. Runs under bench/run.mjs or alone: `node bench/setup.bench.mjs`.
import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { goal, median, startServe } from "./psi-fixture.mjs";

const WORKLOADS = 50;
const SECRETS = 10;
const DELAY_MS = 20;
const REFRESH_ROUNDS = 5;
const FIRST_RUN_ROUNDS = 1;

/** The fake Infisical in a child process; resolves with its URL once it listens. */
async function startFake(root) {
  const source = pathToFileURL(join(root, "packages/testkit/src/fake-infisical.ts")).href;
  const script = `
    // The testkit's sources import each other as "./x.js" (TypeScript's convention);
    // Node's type stripping does not map those to ".ts", so this hook does.
    import { registerHooks } from "node:module";
    registerHooks({
      resolve(specifier, context, next) {
        try {
          return next(specifier, context);
        } catch (error) {
          if (!specifier.startsWith(".") || !specifier.endsWith(".js")) throw error;
          return next(specifier.slice(0, -3) + ".ts", context);
        }
      },
    });
    const { startFakeInfisical } = await import(${JSON.stringify(source)});
    const fake = await startFakeInfisical();
    fake.addUniversalAuth({ clientId: "bench-client", clientSecret: "bench-secret-0123", identityId: "bench" });
    for (let w = 0; w < ${WORKLOADS}; w++) {
      for (let s = 0; s < ${SECRETS}; s++) {
        fake.setSecret({ projectId: "bench-project", environment: "prod", path: "/w" + w, key: "KEY_" + s, value: "value-" + w + "-" + s });
      }
    }
    fake.slow(${DELAY_MS});
    process.stdout.write(JSON.stringify({ url: fake.url }) + "\\n");
    process.stdin.on("data", (chunk) => {
      if (String(chunk).includes("count")) {
        process.stdout.write(JSON.stringify({ requests: fake.requests.length }) + "\\n");
      }
    });
    process.stdin.on("end", async () => { await fake.stop(); process.exit(0); });
  `;
  const child = spawn(
    process.execPath,
    ["--experimental-transform-types", "--no-warnings", "--input-type=module", "-e", script],
    { stdio: ["pipe", "pipe", "inherit"] },
  );
  const lines = [];
  const waiters = [];
  let buffer = "";
  child.stdout.setEncoding("utf8").on("data", (chunk) => {
    buffer += chunk;
    for (let index = buffer.indexOf("\n"); index !== -1; index = buffer.indexOf("\n")) {
      const line = JSON.parse(buffer.slice(0, index));
      buffer = buffer.slice(index + 1);
      const waiter = waiters.shift();
      if (waiter) waiter(line);
      else lines.push(line);
    }
  });
  const next = () =>
    new Promise((resolve, reject) => {
      if (lines.length > 0) return resolve(lines.shift());
      const timer = setTimeout(
        () => reject(new Error("the fake Infisical did not answer")),
        15_000,
      );
      waiters.push((line) => {
        clearTimeout(timer);
        resolve(line);
      });
    });
  const { url } = await next();
  return {
    url,
    async requests() {
      child.stdin.write("count\n");
      return (await next()).requests;
    },
    async stop() {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.stdin.end();
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5_000))]);
      if (child.exitCode === null) child.kill("SIGKILL");
    },
  };
}

export default async function setupBench({ root, log }) {
  const dist = (name) => import(pathToFileURL(join(root, `packages/${name}/dist/index.js`)).href);
  const [core, setup, podmanLib, infisical, keyfile, unitgen] = await Promise.all([
    dist("core"),
    dist("setup"),
    dist("podman"),
    dist("provider-infisical"),
    dist("cache-keyfile"),
    dist("unitgen"),
  ]);
  // The Podman sandbox of the tests (plain TypeScript: Node strips the types).
  const { podmanSandbox } = await import(
    pathToFileURL(join(root, "packages/testkit/src/podman.ts")).href
  );

  const dir = await mkdtemp(join(tmpdir(), "psi-bench-setup-"));
  const stateDir = join(dir, "state");
  const systemdDir = join(dir, "systemd");
  const socket = join(dir, "psi.sock");
  const keyFile = join(dir, "cache.keyfile");
  const cachePath = join(stateDir, "cache.enc");
  await mkdir(stateDir, { mode: 0o700 });
  const fake = await startFake(root);
  let sandbox;
  let serve;
  try {
    await keyfile.initKeyfile({ path: keyFile });
    const workloads = {};
    for (let w = 0; w < WORKLOADS; w++) {
      workloads[`w${String(w).padStart(2, "0")}`] = {
        secrets: [{ project: "bench", path: `/w${w}` }],
      };
    }
    const config = join(dir, "config.yaml");
    await writeFile(
      config,
      JSON.stringify({
        scope: "user",
        state_dir: stateDir,
        systemd_dir: systemdDir,
        providers: {
          infisical: {
            api_url: fake.url,
            auth: {
              method: "universal-auth",
              client_id: "bench-client",
              client_secret: "bench-secret-0123",
            },
            projects: { bench: { id: "bench-project", environment: "prod" } },
            retry_delays: [],
          },
        },
        workloads,
        cache: { enabled: true, backend: "keyfile", key_file: keyFile, path: cachePath },
      }),
    );
    const env = {
      HOME: join(dir, "home"),
      XDG_RUNTIME_DIR: join(dir, "run"),
      PSI_SOCKET: socket,
      PATH: "",
    };
    serve = await startServe(root, { dir, config }, { socket, env: { PSI_SOCKET: socket } });
    sandbox = await podmanSandbox(join(dir, "podman"), unitgen.renderDriverConf({ socket }));
    await sandbox.startService();
    const podman = podmanLib.createPodmanClient({
      socketPath: sandbox.socketPath,
      timeoutMs: 120_000,
    });
    const expectedDriverOptions = setup.parseDriverOptions(unitgen.renderDriverConf({ socket }));

    const loaded = await core.loadConfig({ path: config, env, uid: process.getuid?.() ?? 1000 });
    const logger = core.createLogger({ level: "warn", stream: process.stderr });
    const context = core.makeContext(loaded, { logger, env });
    const backend = keyfile.keyfileCacheBackend(context);
    await backend.open();
    const provider = infisical.infisicalProvider(context);
    await provider.open();
    const providers = new Map([["infisical", provider]]);

    const runOnce = async (concurrency) => {
      const before = await fake.requests();
      const started = performance.now();
      const result = await setup.runSetup({
        context,
        providers,
        podman,
        cache: { path: cachePath, backend },
        concurrency,
        expectedDriverOptions,
        daemonReload: false,
      });
      const ms = performance.now() - started;
      if (!result.ok)
        throw new Error(
          `setup failed: ${JSON.stringify(result.workloads.find((w) => w.status === "failed"))}`,
        );
      const secrets = result.workloads.reduce((sum, w) => sum + w.keys.length, 0);
      if (secrets !== WORKLOADS * SECRETS)
        throw new Error(`expected ${WORKLOADS * SECRETS} secrets, got ${secrets}`);
      return {
        ms,
        requests: (await fake.requests()) - before,
        created: result.workloads.reduce((s, w) => s + w.created.length, 0),
      };
    };
    const reset = async () => {
      for (const secret of await podman.listSecrets()) await podman.deleteSecret(secret.name);
      await rm(systemdDir, { recursive: true, force: true });
      await rm(cachePath, { force: true });
    };

    // Warm-up: logs in (the token is cached for both modes) and registers everything.
    await runOnce(setup.DEFAULT_CONCURRENCY);

    const refresh = { parallel: [], sequential: [] };
    let refreshRequests = 0;
    for (let round = 0; round < REFRESH_ROUNDS; round++) {
      const sequential = await runOnce(1);
      const parallel = await runOnce(setup.DEFAULT_CONCURRENCY);
      refresh.sequential.push(sequential.ms);
      refresh.parallel.push(parallel.ms);
      refreshRequests = parallel.requests;
    }

    const first = { parallel: [], sequential: [] };
    for (let round = 0; round < FIRST_RUN_ROUNDS; round++) {
      await reset();
      const sequential = await runOnce(1);
      await reset();
      const parallel = await runOnce(setup.DEFAULT_CONCURRENCY);
      if (parallel.created !== WORKLOADS * SECRETS)
        throw new Error("first run did not create every secret");
      first.sequential.push(sequential.ms);
      first.parallel.push(parallel.ms);
    }

    const round1 = (value) => Number(value.toFixed(1));
    const summary = {
      workloads: WORKLOADS,
      secrets_per_workload: SECRETS,
      infisical_delay_ms: DELAY_MS,
      concurrency: setup.DEFAULT_CONCURRENCY,
      infisical_requests_per_run: refreshRequests,
      refresh_parallel_ms: round1(median(refresh.parallel)),
      refresh_sequential_ms: round1(median(refresh.sequential)),
      refresh_ratio: round1(median(refresh.sequential) / median(refresh.parallel)),
      first_run_parallel_ms: round1(median(first.parallel)),
      first_run_sequential_ms: round1(median(first.sequential)),
      first_run_ratio: round1(median(first.sequential) / median(first.parallel)),
      refresh_rounds: REFRESH_ROUNDS,
      first_run_rounds: FIRST_RUN_ROUNDS,
    };
    log(
      `refresh (${WORKLOADS}×${SECRETS} registered, ${refreshRequests} Infisical requests at ${DELAY_MS} ms): ` +
        `concurrency ${summary.concurrency} ${summary.refresh_parallel_ms} ms vs one at a time ${summary.refresh_sequential_ms} ms ` +
        `→ ${summary.refresh_ratio}× (goal ≥ 5×)`,
    );
    log(
      `first run (${WORKLOADS * SECRETS} Podman secrets created): concurrency ${summary.concurrency} ${summary.first_run_parallel_ms} ms ` +
        `vs one at a time ${summary.first_run_sequential_ms} ms → ${summary.first_run_ratio}× (Podman serializes secret writes)`,
    );
    await provider.close();
    await backend.close();
    summary.goals = [
      goal(
        `setup, ${WORKLOADS} workloads × ${SECRETS} secrets, Infisical at ${DELAY_MS} ms (refresh)`,
        "≥ 5× one request at a time",
        `${summary.refresh_ratio}× (${summary.refresh_parallel_ms} ms vs ${summary.refresh_sequential_ms} ms)`,
        summary.refresh_ratio >= 5,
      ),
    ];
    return summary;
  } finally {
    await sandbox?.stop().catch(() => {});
    await serve?.stop().catch(() => {});
    await fake.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const { dirname } = await import("node:path");
  const { fileURLToPath } = await import("node:url");
  const root = dirname(dirname(fileURLToPath(import.meta.url)));
  await readdir(join(root, "apps/psi/dist"));
  await setupBench({ root, log: console.log });
}
