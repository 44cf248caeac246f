// Shared by the serve benchmarks: a PSI host in a temp dir (config, keyfile key, cache.enc
// with N entries, one mapping file per entry) and a running `psi serve` on a Unix socket.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NODE_FLAGS } from "@psi/unitgen";

/** Creates the host; `entries` cached Infisical-style secrets with mapping files `id0..`. */
export async function createHost(root, { entries }) {
  const { initKeyfile, keyfileCacheBackendFromKey } = await import(
    join(root, "packages/cache-keyfile/dist/index.js")
  );
  const { saveCache } = await import(join(root, "packages/cache/dist/index.js"));
  const dir = await mkdtemp(join(tmpdir(), "psi-bench-"));
  const stateDir = join(dir, "state");
  await mkdir(stateDir, { mode: 0o700 });
  const keyFile = join(dir, "cache.keyfile");
  const cachePath = join(stateDir, "cache.enc");
  const config = join(dir, "config.yaml");
  await writeFile(
    config,
    [
      `state_dir: ${stateDir}`,
      "providers:",
      "  local: {}",
      `cache: { enabled: true, backend: keyfile, key_file: ${keyFile}, path: ${cachePath} }`,
      "",
    ].join("\n"),
  );
  const key = await initKeyfile({ path: keyFile });
  const backend = keyfileCacheBackendFromKey(key);
  await backend.open();
  const fetched = [];
  const ids = [];
  for (let i = 0; i < entries; i++) {
    const mapping = { provider: "infisical", project: "bench", path: "/app", key: `KEY_${i}` };
    const id = `${i.toString(16).padStart(25, "0")}`;
    ids.push(id);
    await writeFile(join(stateDir, id), JSON.stringify(mapping), { mode: 0o600 });
    fetched.push({ mapping, value: randomBytes(24) });
  }
  await saveCache({ path: cachePath, backend, fetched, prune: true });
  await backend.close();
  return {
    dir,
    config,
    stateDir,
    ids,
    values: fetched.map((f) => f.value),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}

/** One GET over a fresh connection (as curl does); resolves with the status and body. */
export function getOnce(socket, path) {
  return new Promise((resolve, reject) => {
    const client = connect(socket);
    const chunks = [];
    client.on("connect", () =>
      client.write(`GET ${path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`),
    );
    client.on("data", (chunk) => chunks.push(chunk));
    client.on("error", reject);
    client.on("close", () => {
      const text = Buffer.concat(chunks);
      const status = Number(text.subarray(9, 12).toString());
      const split = text.indexOf("\r\n\r\n");
      resolve({ status, body: split === -1 ? Buffer.alloc(0) : text.subarray(split + 4) });
    });
  });
}

/**
 * The Node flags `psi serve` runs with wherever it is started (bin, native unit, image):
 * the benchmarks start it the same way, from the one list in @psi/unitgen.
 */
export const SERVE_NODE_FLAGS = NODE_FLAGS.serve;

/** Polls `path` on `socket` with fresh connections until it answers 200 (1 ms apart). */
async function waitFor200(socket, path, child, deadline, stderr) {
  for (;;) {
    if (child.exitCode !== null) throw new Error(`server exited ${child.exitCode}: ${stderr()}`);
    if (performance.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`server did not answer ${path} within 10 s: ${stderr()}`);
    }
    try {
      const res = await getOnce(socket, path);
      if (res.status === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 1));
  }
}

/**
 * The floor for serve: a bare node:http server answering a constant on a Unix socket,
 * started and polled exactly as `startServe` is; resolves once it answers 200.
 */
export async function startBare(socket) {
  await rm(socket, { force: true }); // a SIGTERMed server leaves its socket file behind
  const started = performance.now();
  const child = spawn(
    process.execPath,
    [
      "-e",
      `require("node:http").createServer((req, res) => res.end("constant-answer")).listen({ path: ${JSON.stringify(socket)}, backlog: 1024 });`,
    ],
    { stdio: "ignore" },
  );
  const exited = new Promise((resolve) => child.on("exit", resolve));
  await waitFor200(socket, "/healthz", child, started + 10_000, () => "");
  return {
    readyMs: performance.now() - started,
    child,
    async rssMb() {
      return rssMbOf(child.pid);
    },
    async stop() {
      child.kill("SIGTERM");
      await exited;
    },
  };
}

async function rssMbOf(pid) {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
}

/** Starts `psi serve` from the build; resolves once /healthz answers 200. */
export async function startServe(
  root,
  host,
  { socket, env = {}, nodeFlags = SERVE_NODE_FLAGS, cli = "apps/psi/dist/cli.js" } = {},
) {
  const sock = socket ?? join(host.dir, "psi.sock");
  const started = performance.now();
  const child = spawn(
    process.execPath,
    [
      ...nodeFlags,
      join(root, cli),
      "serve",
      "-c",
      host.config,
      "--socket",
      sock,
      "--log-level",
      "warn",
    ],
    {
      stdio: ["ignore", "ignore", "pipe"],
      env: { ...process.env, ...env },
    },
  );
  let stderr = "";
  child.stderr.on("data", (d) => {
    stderr += d;
  });
  const exited = new Promise((resolve) =>
    child.on("exit", (code, signal) => resolve({ code, signal })),
  );
  await waitFor200(sock, "/healthz", child, started + 10_000, () => stderr);
  const readyMs = performance.now() - started;
  return {
    child,
    socket: sock,
    startedAt: started,
    readyMs,
    stderr: () => stderr,
    async rssMb() {
      return rssMbOf(child.pid);
    },
    async stop() {
      child.kill("SIGTERM");
      const result = await Promise.race([
        exited,
        new Promise((r) => setTimeout(() => r(undefined), 15_000)),
      ]);
      if (result === undefined) {
        child.kill("SIGKILL");
        throw new Error("psi serve did not stop within 15 s of SIGTERM");
      }
      return result;
    },
  };
}

/**
 * Requests per second for `total` requests (or until `untilMs` passes) with `concurrency`
 * workers, each request on a fresh connection as curl does.
 */
export async function measure(socket, paths, concurrency, total, untilMs = Infinity) {
  let next = 0;
  let failures = 0;
  let done = 0;
  const started = performance.now();
  const worker = async () => {
    while (next < total && performance.now() < untilMs) {
      const path = paths[next++ % paths.length];
      try {
        const res = await getOnce(socket, path);
        if (res.status !== 200) failures++;
      } catch {
        failures++;
      }
      done++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const seconds = (performance.now() - started) / 1000;
  return { rps: done / seconds, failures, requests: done };
}

/**
 * A goal's verdict for the summary table bench/run.mjs prints: `measured` is the text
 * shown (ratio and the absolute numbers it came from).
 */
export function goal(name, target, measured, pass) {
  return { goal: name, target, measured, pass: Boolean(pass) };
}

/** Rounds to `digits` decimals for the summaries. */
export function round(value, digits = 1) {
  return Number(value.toFixed(digits));
}

export function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}
