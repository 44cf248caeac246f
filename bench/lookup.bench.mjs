// Lookup throughput on cache hits, one connection per request (what Podman's curl does),
// against a bare node:http server answering a constant on the same kind of socket, in
// the same run (SPEC §13: ratio >= 0.9 at concurrency 1, 8, 64, zero errors). psi serve
// runs with the Node flags it is started with (SERVE_NODE_FLAGS). Then a burst of 256
// real curl lookups, 64 at a time (goal: zero failures).
import { spawn } from "node:child_process";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { createHost, goal, measure, median, round, startBare, startServe } from "./psi-fixture.mjs";

const CONCURRENCY = [1, 8, 64];
const REQUESTS = { 1: 1000, 8: 2000, 64: 3000 };
// Shared, noisy machines: many short rounds, alternating which server goes first, medians.
const ROUNDS = 7;
const GOAL_RATIO = 0.9;

async function curlBurst(socket, ids, values, total, parallel) {
  let next = 0;
  let failures = 0;
  let wrong = 0;
  const started = performance.now();
  const one = (i) =>
    new Promise((resolve) => {
      const id = ids[i % ids.length];
      const child = spawn(
        "curl",
        ["-sf", "--unix-socket", socket, `http://localhost/lookup/${id}`],
        { stdio: ["ignore", "pipe", "ignore"] },
      );
      const chunks = [];
      child.stdout.on("data", (d) => chunks.push(d));
      child.on("error", () => {
        failures++;
        resolve();
      });
      child.on("close", (code) => {
        if (code !== 0) failures++;
        else if (!Buffer.concat(chunks).equals(values[i % ids.length])) wrong++;
        resolve();
      });
    });
  const worker = async () => {
    while (next < total) await one(next++);
  };
  await Promise.all(Array.from({ length: parallel }, worker));
  return { total, parallel, failures, wrong, seconds: (performance.now() - started) / 1000 };
}

export default async function lookupBench({ root, log }) {
  const host = await createHost(root, { entries: 200 });
  const psi = await startServe(root, host);
  const bareSocket = join(host.dir, "bare.sock");
  const bare = await startBare(bareSocket);
  const goals = [];
  const psiPaths = host.ids.map((id) => `/lookup/${id}`);
  const barePaths = ["/"];
  try {
    // warm both (JIT, page cache)
    await measure(psi.socket, psiPaths, 8, 1000);
    await measure(bareSocket, barePaths, 8, 1000);
    const rows = [];
    for (const concurrency of CONCURRENCY) {
      const psiRuns = [];
      const bareRuns = [];
      let failures = 0;
      for (let round = 0; round < ROUNDS; round++) {
        const bareFirst = round % 2 === 0;
        const first = bareFirst
          ? await measure(bareSocket, barePaths, concurrency, REQUESTS[concurrency])
          : await measure(psi.socket, psiPaths, concurrency, REQUESTS[concurrency]);
        const second = bareFirst
          ? await measure(psi.socket, psiPaths, concurrency, REQUESTS[concurrency])
          : await measure(bareSocket, barePaths, concurrency, REQUESTS[concurrency]);
        const b = bareFirst ? first : second;
        const p = bareFirst ? second : first;
        bareRuns.push(b.rps);
        psiRuns.push(p.rps);
        failures += p.failures + b.failures;
      }
      const row = {
        concurrency,
        psi_rps: Math.round(median(psiRuns)),
        bare_rps: Math.round(median(bareRuns)),
        ratio: Number((median(psiRuns) / median(bareRuns)).toFixed(3)),
        failures,
      };
      rows.push(row);
      log(
        `concurrency ${String(concurrency).padStart(2)}: psi ${row.psi_rps} req/s, bare ${row.bare_rps} req/s, ` +
          `ratio ${row.ratio} (goal ≥ ${GOAL_RATIO})${failures ? `, ${failures} failures` : ""}`,
      );
      goals.push(
        goal(
          `lookup throughput, one connection per request, c = ${concurrency}`,
          `≥ ${GOAL_RATIO}× bare node:http, 0 errors`,
          `${row.ratio}× (${row.psi_rps} vs ${row.bare_rps} req/s), ${failures} errors`,
          row.ratio >= GOAL_RATIO && failures === 0,
        ),
      );
    }
    const burst = await curlBurst(psi.socket, host.ids, host.values, 256, 64);
    log(
      `curl burst: ${burst.total} lookups, ${burst.parallel} at a time: ${burst.failures} failures, ` +
        `${burst.wrong} wrong answers, ${burst.seconds.toFixed(2)} s (goal: 0 failures)`,
    );
    const rssMb = await psi.rssMb();
    log(`psi serve RSS after the load: ${rssMb.toFixed(1)} MB`);
    goals.push(
      goal(
        "256 curl lookups, 64 at a time",
        "0 failures",
        `${burst.failures} failures, ${burst.wrong} wrong answers`,
        burst.failures === 0 && burst.wrong === 0,
      ),
    );
    return { rows, burst, rss_mb: round(rssMb), goals };
  } finally {
    await bare.stop();
    await psi.stop();
    await host.cleanup();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const { dirname } = await import("node:path");
  const { fileURLToPath } = await import("node:url");
  await lookupBench({ root: dirname(dirname(fileURLToPath(import.meta.url))), log: console.log });
}
