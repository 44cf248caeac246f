// serve's memory under load (SPEC §13): RSS after 60 s of cache hits at 64 connections
// (one connection per request, as curl does) at most 80 MB, while throughput stays at
// least 0.8× a bare node:http server's at c = 1, 8 and 64 (measured in the same run).
//
// V8's young generation decides most of that RSS: under a steady request load the
// semi-spaces grow to their maximum (16 MB each by default on 64-bit) and stay there.
// Each candidate set of V8 flags is measured with its own psi serve; the set serve is
// started with (SERVE_NODE_FLAGS) is the goal row. To compare candidates (60 s each):
//   BENCH_SERVE_FLAGS="none|--max-semi-space-size=1|--max-semi-space-size=1 --single-threaded-gc"
// BENCH_LOAD_SECONDS shortens the load for a quick look (the goal then reads as failed).
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import {
  createHost,
  goal,
  measure,
  median,
  round,
  SERVE_NODE_FLAGS,
  startBare,
  startServe,
} from "./psi-fixture.mjs";

const LOAD_SECONDS = Number(process.env.BENCH_LOAD_SECONDS ?? 60);
const CONCURRENCY = [1, 8, 64];
const REQUESTS = { 1: 600, 8: 1500, 64: 2500 };
const ROUNDS = 5;
const GOAL_MB = 80;
const GOAL_RATIO = 0.8;

// The memory flags are what varies; --disable-sigusr1 stays in every candidate.
const BASE_FLAGS = ["--disable-sigusr1"];
const chosenValue = SERVE_NODE_FLAGS.filter((f) => !BASE_FLAGS.includes(f)).join(" ") || "none";

// The CLI re-executes serve with its memory flags unless each is given (any value, or
// negated: apps/psi/src/node-flags.ts), so "none" states V8's defaults explicitly.
// A candidate that leaves one of serve's flags out gets it added the same way.
const V8_DEFAULTS = [
  "--max-semi-space-size=16",
  "--max-old-space-size=0",
  "--no-single-threaded-gc",
  "--concurrent-recompilation",
  "--concurrent-sparkplug",
];

function flagsFor(value) {
  return value === "none" ? [...BASE_FLAGS, ...V8_DEFAULTS] : [...BASE_FLAGS, ...value.split(" ")];
}

export default async function serveMemoryBench({ root, log }) {
  const candidates = (process.env.BENCH_SERVE_FLAGS ?? chosenValue)
    .split("|")
    .map((v) => v.trim())
    .filter(Boolean);
  const host = await createHost(root, { entries: 200 });
  const paths = host.ids.map((id) => `/lookup/${id}`);
  const bareSocket = join(host.dir, "bare.sock");
  const goals = [];
  const results = {};
  try {
    for (const value of candidates) {
      const psi = await startServe(root, host, { nodeFlags: flagsFor(value) });
      const bare = await startBare(bareSocket);
      try {
        await measure(psi.socket, paths, 8, 1000); // warm (JIT)
        await measure(bareSocket, ["/"], 8, 1000);
        const rows = [];
        for (const c of CONCURRENCY) {
          const p = [];
          const b = [];
          let failures = 0;
          for (let round = 0; round < ROUNDS; round++) {
            const first = round % 2 === 0;
            const runBare = () => measure(bareSocket, ["/"], c, REQUESTS[c]);
            const runPsi = () => measure(psi.socket, paths, c, REQUESTS[c]);
            const [x, y] = first
              ? [await runBare(), await runPsi()]
              : [await runPsi(), await runBare()].reverse();
            b.push(x.rps);
            p.push(y.rps);
            failures += x.failures + y.failures;
          }
          rows.push({
            concurrency: c,
            psi_rps: Math.round(median(p)),
            bare_rps: Math.round(median(b)),
            ratio: round(median(p) / median(b), 3),
            failures,
          });
        }
        const load = await measure(
          psi.socket,
          paths,
          64,
          Infinity,
          performance.now() + LOAD_SECONDS * 1000,
        );
        const rss = await psi.rssMb();
        const bareRss = await bare.rssMb();
        const result = {
          flags: value,
          rss_mb: round(rss),
          bare_rss_mb: round(bareRss),
          load_seconds: LOAD_SECONDS,
          load_rps: Math.round(load.rps),
          load_failures: load.failures,
          rows,
        };
        results[value] = result;
        log(
          `${value}: RSS after ${LOAD_SECONDS} s at c=64 ${result.rss_mb} MB ` +
            `(${result.load_rps} req/s, ${load.failures} failures; bare server ${result.bare_rss_mb} MB); ` +
            `throughput vs bare: ${rows.map((r) => `c=${r.concurrency} ${r.ratio}×`).join(", ")}`,
        );
        if (value === chosenValue) {
          const slowest = Math.min(...rows.map((r) => r.ratio));
          const errors = load.failures + rows.reduce((n, r) => n + r.failures, 0);
          goals.push(
            goal(
              `serve RSS after ${LOAD_SECONDS} s of cache hits at c = 64 (${value})`,
              `≤ ${GOAL_MB} MB, throughput ≥ ${GOAL_RATIO}× bare at c = 1, 8, 64`,
              `${result.rss_mb} MB; ${rows.map((r) => `${r.ratio}×`).join(" / ")}; ${errors} errors`,
              rss <= GOAL_MB && slowest >= GOAL_RATIO && errors === 0 && LOAD_SECONDS >= 60,
            ),
          );
        }
      } finally {
        await bare.stop();
        await psi.stop();
      }
    }
    return { chosen: chosenValue, results, goals };
  } finally {
    await host.cleanup();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const { dirname } = await import("node:path");
  const { fileURLToPath } = await import("node:url");
  await serveMemoryBench({
    root: dirname(dirname(fileURLToPath(import.meta.url))),
    log: console.log,
  });
}
