// `psi serve` from process start to the first 200 on /healthz with 10,000 cached entries
// (keyfile backend), and its memory (SPEC §13: < 150 ms, < 100 MB RSS). A bare
// `node -e` start is measured in the same run for scale.
import { spawnSync } from "node:child_process";
import { pathToFileURL } from "node:url";
import { createHost, getOnce, median, startServe } from "./psi-fixture.mjs";

const RUNS = 7;

export default async function serveStartBench({ root, log }) {
  const host = await createHost(root, { entries: 10_000 });
  try {
    const nodeStarts = [];
    for (let i = 0; i < 5; i++) {
      const t = performance.now();
      spawnSync(process.execPath, ["-e", ""]);
      nodeStarts.push(performance.now() - t);
    }
    const ready = [];
    const rss = [];
    const exits = [];
    for (let i = 0; i < RUNS; i++) {
      const psi = await startServe(root, host);
      ready.push(psi.readyMs);
      // one hit to be sure the 10,000 entries are loaded and answering
      const hit = await getOnce(psi.socket, `/lookup/${host.ids[1234]}`);
      if (hit.status !== 200 || !hit.body.equals(host.values[1234]))
        throw new Error(`lookup after start answered ${hit.status}`);
      rss.push(await psi.rssMb());
      exits.push(await psi.stop());
    }
    const summary = {
      entries: 10_000,
      ready_ms_median: Number(median(ready).toFixed(1)),
      ready_ms_min: Number(Math.min(...ready).toFixed(1)),
      ready_ms_max: Number(Math.max(...ready).toFixed(1)),
      rss_mb_median: Number(median(rss).toFixed(1)),
      node_bare_start_ms: Number(median(nodeStarts).toFixed(1)),
      clean_exits: exits.filter((e) => e.code === 0).length,
      runs: RUNS,
    };
    log(
      `start to first /healthz 200 (10,000 entries): median ${summary.ready_ms_median} ms ` +
        `(min ${summary.ready_ms_min}, max ${summary.ready_ms_max}; goal < 150 ms; bare node start ${summary.node_bare_start_ms} ms)`,
    );
    log(`RSS after start and one lookup: median ${summary.rss_mb_median} MB (goal < 100 MB)`);
    log(`SIGTERM: ${summary.clean_exits}/${RUNS} exits with code 0`);
    return summary;
  } finally {
    await host.cleanup();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const { dirname } = await import("node:path");
  const { fileURLToPath } = await import("node:url");
  await serveStartBench({
    root: dirname(dirname(fileURLToPath(import.meta.url))),
    log: console.log,
  });
}
