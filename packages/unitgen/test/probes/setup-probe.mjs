// Stand-in for `psi setup` (not built yet when this was written): the same I/O as the
// real command — list secrets through the Podman REST API on its socket, write a workload
// drop-in under systemd_dir and cache.enc in state_dir atomically — plus a report of the
// confinement it runs under.
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  writeFileSync,
} from "node:fs";
import { request } from "node:http";
import { join } from "node:path";

const { PSI_STATE_DIR, PSI_SYSTEMD_DIR, PSI_PODMAN_SOCKET, PSI_DROP_IN } = process.env;
function atomicWrite(dir, name, data) {
  const tmp = join(dir, `.${name}.tmp`);
  const fd = openSync(tmp, "wx", 0o600);
  writeFileSync(fd, data);
  fsyncSync(fd);
  closeSync(fd);
  renameSync(tmp, join(dir, name));
}
const podman = await new Promise((resolve, reject) => {
  const req = request(
    { socketPath: PSI_PODMAN_SOCKET, path: "/v5.0.0/libpod/secrets/json" },
    (res) => {
      let body = "";
      res.on("data", (c) => {
        body += c;
      });
      res.on("end", () => resolve({ status: res.statusCode, body }));
    },
  );
  req.on("error", reject);
  req.end();
});
const dropInDir = join(PSI_SYSTEMD_DIR, "myapp.container.d");
mkdirSync(dropInDir, { recursive: true });
atomicWrite(dropInDir, "50-secrets.conf", PSI_DROP_IN);
atomicWrite(PSI_STATE_DIR, "cache.enc", Buffer.from("PSIC\x01\x01"));
const status = (pattern) =>
  readFileSync("/proc/self/status", "utf8")
    .split("\n")
    .find((l) => pattern.test(l)) ?? "";
let writeEtc = "ok";
try {
  writeFileSync("/etc/psi-probe", "x");
} catch (error) {
  writeEtc = error.code;
}
process.stdout.write(
  `${JSON.stringify({ podman: podman.status, secrets: JSON.parse(podman.body).length, noNewPrivs: status(/^NoNewPrivs:/).split(/\s+/)[1], writeEtc })}\n`,
);
