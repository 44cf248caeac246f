// Stand-in for `psi serve` (not built yet when this was written): the same I/O as the
// real service — read the config and the cache-key credential, bind the socket in the
// socket directory (0600), answer /healthz, write mappings to state_dir on POST /store
// (temp file + fsync + rename, 0600) — plus a report of the confinement it runs under.
import {
  chmodSync,
  closeSync,
  fsyncSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { createServer } from "node:http";
import { join } from "node:path";

const { PSI_CONFIG_DIR, PSI_STATE_DIR, PSI_SOCKET, CREDENTIALS_DIRECTORY } = process.env;
const status = (file, pattern) =>
  readFileSync(file, "utf8")
    .split("\n")
    .find((l) => pattern.test(l)) ?? "";
function attempt(fn) {
  try {
    fn();
    return "ok";
  } catch (error) {
    return error.code;
  }
}
const report = {
  config: readFileSync(join(PSI_CONFIG_DIR, "config.yaml"), "utf8").length > 0,
  credentialBytes: readFileSync(join(CREDENTIALS_DIRECTORY, "psi-cache-key")).length,
  core: status("/proc/self/limits", /^Max core file size/)
    .split(/\s+/)
    .slice(4, 6)
    .join(" "),
  noNewPrivs: status("/proc/self/status", /^NoNewPrivs:/).split(/\s+/)[1],
  capEff: status("/proc/self/status", /^CapEff:/).split(/\s+/)[1],
  seccomp: status("/proc/self/status", /^Seccomp:/).split(/\s+/)[1],
  writeEtc: attempt(() => writeFileSync("/etc/psi-probe", "x")),
  tmpFile: `/tmp/psi-probe-${process.pid}`,
  writeTmp: attempt(() => writeFileSync(`/tmp/psi-probe-${process.pid}`, "x")),
};
rmSync(PSI_SOCKET, { force: true });
const server = createServer((req, res) => {
  if (req.method === "GET" && req.url === "/healthz") return res.end("ok");
  const store = /^\/store\/([0-9a-f]+)$/.exec(req.url ?? "");
  if (req.method === "POST" && store) {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const tmp = join(PSI_STATE_DIR, `.${store[1]}.tmp`);
      const fd = openSync(tmp, "wx", 0o600);
      writeFileSync(fd, Buffer.concat(chunks));
      fsyncSync(fd);
      closeSync(fd);
      renameSync(tmp, join(PSI_STATE_DIR, store[1]));
      res.end("ok");
    });
    return;
  }
  res.statusCode = 404;
  res.end("not found");
});
server.listen(PSI_SOCKET, () => {
  chmodSync(PSI_SOCKET, 0o600);
  process.stdout.write(`${JSON.stringify(report)}\n`);
});
process.on("SIGTERM", () =>
  server.close(() => {
    rmSync(PSI_SOCKET, { force: true });
    process.exit(0);
  }),
);
