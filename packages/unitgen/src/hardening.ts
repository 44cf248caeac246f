import { dirname } from "node:path";
import { isWithin, type UnitSettings } from "./settings.js";

/** Which long-lived PSI process a unit runs: they need different writable paths. */
export type HardenedRole = "serve" | "setup";

function unique(paths: readonly string[]): string[] {
  return [...new Set(paths)];
}

/**
 * Paths the process writes to, which `ProtectSystem=strict` would otherwise make
 * read-only: serve writes mappings (`/store`) to state_dir and its socket; setup writes
 * state_dir (token caches, cache.enc) and the workload drop-ins in systemd_dir.
 */
export function writablePaths(settings: UnitSettings, role: HardenedRole): string[] {
  const paths = [settings.stateDir];
  if (role === "serve") paths.push(dirname(settings.socket));
  if (role === "setup") {
    paths.push(settings.systemdDir);
    const cacheDir = settings.cache ? dirname(settings.cache.path) : undefined;
    if (cacheDir && !isWithin(cacheDir, settings.stateDir)) paths.push(cacheDir);
  }
  return unique(paths);
}

/**
 * Seccomp: the syscalls systemd deems fit for services (Node needs nothing else), native
 * ABI only, EPERM instead of a kill for anything filtered (libuv falls back when, e.g.,
 * io_uring is refused), and sockets only for the Unix socket, Podman, D-Bus and HTTPS.
 */
const SECCOMP = [
  "SystemCallArchitectures=native",
  "SystemCallFilter=@system-service",
  "SystemCallErrorNumber=EPERM",
  "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
];

/**
 * `[Service]` sandboxing for a native serve or setup unit. Each directive was checked
 * against the real processes (README, "How the hardening was checked"). The user scope
 * gets only what needs no mount namespace (limits, no_new_privs, seccomp): a user manager
 * can sandbox the file system only through unprivileged user namespaces, which not every
 * host allows.
 *
 * Left out on purpose: `MemoryDenyWriteExecute=` (V8's JIT needs writable+executable
 * pages), and for setup `CapabilityBoundingSet=` (systemd may authorize setup's D-Bus
 * daemon-reload by CAP_SYS_ADMIN, which cannot be exercised without systemd as PID 1).
 */
export function nativeHardening(settings: UnitSettings, role: HardenedRole): string[] {
  const lines = ["LimitCORE=0", "UMask=0077", "NoNewPrivileges=yes", ...SECCOMP];
  // serve holds every secret in memory: never in swap (mlockall is no option under V8).
  if (role === "serve") lines.push("MemorySwapMax=0");
  if (settings.scope === "user") return lines;
  if (role === "serve") lines.push("CapabilityBoundingSet=");
  lines.push(
    "ProtectSystem=strict",
    `ReadWritePaths=${writablePaths(settings, role).join(" ")}`,
    "ProtectHome=yes",
    "PrivateTmp=yes",
    "PrivateDevices=yes",
    "ProtectKernelTunables=yes",
    "ProtectControlGroups=yes",
  );
  return lines;
}

/**
 * `[Container]` hardening for the serve and setup quadlets: no core dumps inside the
 * container, no privilege gain; serve also runs without capabilities (it only touches
 * files it owns). Podman itself is not sandboxed: it needs most of the host.
 */
export function containerHardening(role: HardenedRole): string[] {
  const lines = ["NoNewPrivileges=true"];
  if (role === "serve") lines.push("DropCapability=all");
  lines.push("Ulimit=core=0:0");
  return lines;
}
