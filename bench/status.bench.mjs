// `psi cache status` total process time, spawn to exit (SPEC §13: < 150 ms), on a host
// whose cache.enc holds 10,000 entries, against `node -e ""` started the same way in
// the same run (interleaved, so both see the same machine load). `psi status` is timed
// too (not a goal): once with serve down, once with serve up (healthz + metrics).
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { createHost, median, startServe } from "./psi-fixture.mjs";

const RUNS = 15;
const GOAL_MS = 150;

function timed(args, env) {
  const t = performance.now();
  const result = spawnSync(process.execPath, args, { env, encoding: "utf8" });
  return { ms: performance.now() - t, result };
}

export default async function statusBench({ root, log }) {
  const cli = join(root, "apps/psi/dist/cli.js");
  const host = await createHost(root, { entries: 10_000 });
  const env = {
    ...process.env,
    PSI_CONFIG: host.config,
    PSI_SOCKET: join(host.dir, "psi.sock"),
    PSI_PODMAN_SOCKET: join(host.dir, "no-podman.sock"),
  };
  try {
    const check = timed([cli, "--json", "cache", "status"], env).result;
    const shown = JSON.parse(check.stdout);
    if (check.status !== 0 || shown.tag_backend !== "keyfile" || !shown.exists) {
      throw new Error(
        `psi cache status did not report the cache (exit ${check.status}): ${check.stdout}${check.stderr}`,
      );
    }
    const bare = [];
    const cacheStatus = [];
    const statusDown = [];
    for (let i = 0; i < RUNS; i++) {
      bare.push(timed(["-e", ""], env).ms);
      cacheStatus.push(timed([cli, "cache", "status"], env).ms);
      statusDown.push(timed([cli, "status"], env).ms);
    }
    const serve = await startServe(root, host, { socket: env.PSI_SOCKET });
    const statusUp = [];
    try {
      const up = JSON.parse(timed([cli, "status", "--json"], env).result.stdout);
      if (!up.serve.running || up.cache.entries !== 10_000) {
        throw new Error(`psi status with serve up: ${JSON.stringify(up.serve)}`);
      }
      for (let i = 0; i < RUNS; i++) statusUp.push(timed([cli, "status"], env).ms);
    } finally {
      await serve.stop();
    }
    const m = (values) => Number(median(values).toFixed(1));
    const summary = {
      runs: RUNS,
      goal_ms: GOAL_MS,
      node_bare_ms: m(bare),
      cache_status_ms: m(cacheStatus),
      cache_status_min_ms: Number(Math.min(...cacheStatus).toFixed(1)),
      cache_status_over_bare_ms: Number((median(cacheStatus) - median(bare)).toFixed(1)),
      cache_status_ratio_to_bare: Number((median(cacheStatus) / median(bare)).toFixed(2)),
      status_serve_down_ms: m(statusDown),
      status_serve_up_ms: m(statusUp),
    };
    log(
      `psi cache status (10,000 entries): median ${summary.cache_status_ms} ms ` +
        `(min ${summary.cache_status_min_ms}; ${summary.cache_status_ms < GOAL_MS ? "meets" : "MISSES"} goal < ${GOAL_MS} ms); ` +
        `node -e "" ${summary.node_bare_ms} ms → psi's own cost ${summary.cache_status_over_bare_ms} ms ` +
        `(${summary.cache_status_ratio_to_bare}× a bare node start)`,
    );
    log(
      `psi status: median ${summary.status_serve_down_ms} ms with serve down, ` +
        `${summary.status_serve_up_ms} ms with serve up (healthz + metrics)`,
    );
    return summary;
  } finally {
    await host.cleanup();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const { dirname } = await import("node:path");
  const { fileURLToPath } = await import("node:url");
  await statusBench({ root: dirname(dirname(fileURLToPath(import.meta.url))), log: console.log });
}
