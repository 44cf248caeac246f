// Runs a process under the file-system, privilege and limit restrictions a native unit's
// [Service] section asks for, without systemd as PID 1: a private mount namespace
// (unshare), read-only remounts and tmpfs mounts like systemd's namespace setup,
// prlimit for Limit*=, setpriv for NoNewPrivileges= and CapabilityBoundingSet=, and the
// shell's umask for UMask=. Used to check that serve and setup still work under the
// hardening the units emit.
import { type ChildProcess, spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseUnit } from "./quadlet-keys.js";

/** The [Service] directives this emulation knows how to apply (value checks in `script`). */
export const EMULATED = new Set([
  "LimitCORE",
  "UMask",
  "NoNewPrivileges",
  "CapabilityBoundingSet",
  "ProtectSystem",
  "ReadWritePaths",
  "ProtectHome",
  "PrivateTmp",
  "PrivateDevices",
  "ProtectKernelTunables",
  "ProtectControlGroups",
  "SystemCallArchitectures",
  "SystemCallFilter",
  "SystemCallErrorNumber",
  "RestrictAddressFamilies",
]);

/** [Service] keys that are not sandboxing (they configure what runs, not how it is confined). */
export const NOT_SANDBOXING = new Set([
  // resource control (cgroup): checked by systemd-analyze verify; serve checks it at start
  "MemorySwapMax",
  "Type",
  "Restart",
  "RemainAfterExit",
  "RuntimeDirectory",
  "RuntimeDirectoryMode",
  "RuntimeDirectoryPreserve",
  "StateDirectory",
  "CacheDirectory",
  "LoadCredentialEncrypted",
  "Environment",
  "ExecStart",
]);

/** The [Service] entries of a unit. */
export function serviceDirectives(unitText: string): Array<[string, string]> {
  return parseUnit(unitText).get("Service") ?? [];
}

const SECCOMP_EXEC = join(dirname(fileURLToPath(import.meta.url)), "probes", "seccomp-exec.py");

const q = (s: string) => `'${s.replaceAll("'", "'\\''")}'`;

/**
 * The shell script that, run as root in a fresh mount namespace, applies the unit's
 * sandboxing and execs `argv`. `scratch` is a writable directory for the old /dev.
 */
export function sandboxScript(
  unitText: string,
  argv: readonly string[],
  scratch: string,
  keep: readonly string[] = [],
): string {
  const d = new Map<string, string>();
  for (const [key, value] of serviceDirectives(unitText)) {
    if (NOT_SANDBOXING.has(key)) continue;
    if (!EMULATED.has(key)) throw new Error(`no emulation for ${key}=: add one before emitting it`);
    d.set(key, value);
  }
  const lines = ["set -eu"];
  // Test plumbing, not the unit's semantics: the checkout and Node may live under /tmp or a
  // home directory (CI clones), which PrivateTmp=/ProtectHome= hide; keep them visible
  // (read-only, like the rest of the system) the way BindReadOnlyPaths= would.
  const hidden = keep.filter((path) => /^\/(tmp|var\/tmp|home|root|run\/user)(\/|$)/.test(path));
  hidden.forEach((path, i) => {
    const saved = q(join(scratch, `keep-${i}`));
    lines.push(`mkdir -p ${saved} && mount --bind ${q(path)} ${saved}`);
  });
  const readOnly = (pattern: string) =>
    `awk '{print $5}' /proc/self/mountinfo | sort -u | while read -r mp; do case "$mp" in ${pattern}) mount -o remount,bind,ro "$mp" ;; esac; done`;
  if (d.get("PrivateDevices") === "yes") {
    const old = join(scratch, "olddev");
    lines.push(
      `mkdir -p ${q(old)} && mount --bind /dev ${q(old)}`,
      "mount -t tmpfs -o mode=755,nosuid,noexec tmpfs /dev",
      `for n in null zero full random urandom tty; do touch /dev/$n; mount --bind ${q(old)}/$n /dev/$n; done`,
      "mkdir /dev/shm /dev/pts && mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm",
      "ln -s /proc/self/fd /dev/fd && ln -s /proc/self/fd/0 /dev/stdin && ln -s /proc/self/fd/1 /dev/stdout && ln -s /proc/self/fd/2 /dev/stderr",
      `umount -l ${q(old)}`,
    );
  }
  if (d.get("ProtectKernelTunables") === "yes") {
    lines.push("mount --bind /proc/sys /proc/sys", readOnly("/proc/sys|/sys|/sys/*"));
  }
  if (d.get("ProtectControlGroups") === "yes")
    lines.push(readOnly("/sys/fs/cgroup|/sys/fs/cgroup/*"));
  const protectSystem = d.get("ProtectSystem");
  if (protectSystem !== undefined) {
    if (protectSystem !== "strict")
      throw new Error(`ProtectSystem=${protectSystem} is not emulated`);
    // strict: everything read-only except the API file systems.
    lines.push(readOnly("/proc|/proc/*|/dev|/dev/*|/sys|/sys/*) ;; *"));
    for (const path of (d.get("ReadWritePaths") ?? "").split(" ").filter(Boolean)) {
      lines.push(`mount --bind ${q(path)} ${q(path)} && mount -o remount,bind,rw ${q(path)}`);
    }
  }
  if (d.get("ProtectHome") === "yes") {
    lines.push(
      "for h in /home /root /run/user; do [ -d $h ] && mount -t tmpfs -o mode=000 tmpfs $h || true; done",
    );
  }
  if (d.get("PrivateTmp") === "yes")
    lines.push(
      "mount -t tmpfs -o mode=1777 tmpfs /tmp",
      "mount -t tmpfs -o mode=1777 tmpfs /var/tmp",
    );
  hidden.forEach((path, i) => {
    lines.push(`mkdir -p ${q(path)} && mount --bind ${q(join(scratch, `keep-${i}`))} ${q(path)}`);
  });
  if (d.get("ProtectHome") === "yes") {
    lines.push(
      "for h in /home /root /run/user; do [ -d $h ] && mount -o remount,ro $h || true; done",
    );
  }
  const wrap: string[] = [];
  const core = d.get("LimitCORE");
  if (core !== undefined) wrap.push("prlimit", `--core=${core}`, "--");
  const setpriv: string[] = [];
  if (d.get("NoNewPrivileges") === "yes") setpriv.push("--no-new-privs");
  if (d.get("CapabilityBoundingSet") === "")
    setpriv.push("--bounding-set", "-all", "--inh-caps", "-all");
  if (setpriv.length > 0) wrap.push("setpriv", ...setpriv, "--");
  const filter = d.get("SystemCallFilter");
  if (filter !== undefined || d.has("RestrictAddressFamilies")) {
    // libseccomp filters admit the native ABI only, and probes/seccomp-exec.py fails with EPERM.
    if (d.get("SystemCallArchitectures") !== "native")
      throw new Error("only SystemCallArchitectures=native is emulated");
    if (d.get("SystemCallErrorNumber") !== "EPERM")
      throw new Error("only SystemCallErrorNumber=EPERM is emulated");
    if (d.get("NoNewPrivileges") !== "yes")
      throw new Error("seccomp needs NoNewPrivileges=yes here");
    wrap.push(
      "/usr/bin/python3",
      SECCOMP_EXEC,
      filter ?? "@default @system-service",
      d.get("RestrictAddressFamilies") ?? "-",
      "--",
    );
  }
  const umask = d.get("UMask");
  if (umask !== undefined) lines.push(`umask ${umask}`);
  lines.push(`exec ${[...wrap, ...argv].map(q).join(" ")}`);
  return `${lines.join("\n")}\n`;
}

/** Starts `argv` under the unit's sandbox; stdout and stderr are collected. */
export function spawnSandboxed(
  unitText: string,
  argv: readonly string[],
  options: { scratch: string; env: Record<string, string>; keep?: readonly string[] },
): { child: ChildProcess; output: () => string } {
  const script = sandboxScript(unitText, argv, options.scratch, options.keep);
  const child = spawn(
    "unshare",
    ["--mount", "--propagation", "private", "--", "sh", "-c", script],
    {
      env: options.env,
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let output = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  return { child, output: () => output };
}
