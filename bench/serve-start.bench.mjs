// `psi serve` from process start to the first 200 on /healthz with 10,000 cached entries
// (keyfile backend), against a bare node:http server started and polled the same way, in
// the same run (SPEC §13: at most 1.3× the bare server's start). Runs alternate between
// the two so both see the same machine load; the ratio is of the medians. The first
// start of each is a warm-up (page cache, Node's compile cache) and is not counted.
// serve listens before it decrypts cache.enc (lookups that arrive meanwhile wait for it),
// so the time to the first answered cache hit is reported next to it.
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { createHost, getOnce, goal, median, round, startBare, startServe } from "./psi-fixture.mjs";

const RUNS = 11;
const GOAL_RATIO = 1.3;

export default async function serveStartBench({ root, log }) {
  const host = await createHost(root, { entries: 10_000 });
  // compiled code of this run only (as root the default is /var/cache/psi, shared with
  // whatever ran psi before)
  const env = {
    XDG_CACHE_HOME: join(host.dir, "xdg-cache"),
    NODE_COMPILE_CACHE: join(host.dir, "compile-cache"),
  };
  try {
    const bare = [];
    const ready = [];
    const firstHit = [];
    const rss = [];
    const exits = [];
    for (let i = 0; i <= RUNS; i++) {
      const b = await startBare(join(host.dir, "bare.sock"));
      await b.stop();
      const psi = await startServe(root, host, { env });
      // one hit to be sure the 10,000 entries are loaded and answering
      const hit = await getOnce(psi.socket, `/lookup/${host.ids[1234]}`);
      const hitMs = performance.now() - psi.startedAt;
      if (hit.status !== 200 || !hit.body.equals(host.values[1234]))
        throw new Error(`lookup after start answered ${hit.status}`);
      const mb = await psi.rssMb();
      exits.push(await psi.stop());
      if (i === 0) continue;
      bare.push(b.readyMs);
      ready.push(psi.readyMs);
      firstHit.push(hitMs);
      rss.push(mb);
    }
    const ratio = median(ready) / median(bare);
    const summary = {
      entries: 10_000,
      runs: RUNS,
      ready_ms_median: round(median(ready)),
      ready_ms_min: round(Math.min(...ready)),
      ready_ms_max: round(Math.max(...ready)),
      bare_ready_ms_median: round(median(bare)),
      ratio: round(ratio, 2),
      first_hit_ms_median: round(median(firstHit)),
      first_hit_ratio: round(median(firstHit) / median(bare), 2),
      rss_mb_median: round(median(rss)),
      clean_exits: exits.filter((e) => e.code === 0).length,
    };
    log(
      `start to first /healthz 200 (10,000 entries): psi serve median ${summary.ready_ms_median} ms ` +
        `(min ${summary.ready_ms_min}, max ${summary.ready_ms_max}), bare node:http server ` +
        `${summary.bare_ready_ms_median} ms → ${summary.ratio}× (goal ≤ ${GOAL_RATIO}×)`,
    );
    log(
      `start to the first cache-hit lookup answered: median ${summary.first_hit_ms_median} ms ` +
        `→ ${summary.first_hit_ratio}× the bare server's start`,
    );
    log(`RSS after start and one lookup: median ${summary.rss_mb_median} MB`);
    log(`SIGTERM: ${summary.clean_exits}/${RUNS + 1} exits with code 0`);
    summary.goals = [
      goal(
        "`psi serve` start → first /healthz 200, 10,000 entries",
        `≤ ${GOAL_RATIO}× bare node:http start`,
        `${summary.ratio}× (${summary.ready_ms_median} ms vs ${summary.bare_ready_ms_median} ms)`,
        ratio <= GOAL_RATIO,
      ),
    ];
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
