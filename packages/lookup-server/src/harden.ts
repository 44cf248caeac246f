import { existsSync, readFileSync, realpathSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { errorMessage } from "@psi/core";

/** What {@link hardenProcess} achieved; `problems` says why a step failed. */
export interface HardenResult {
  /** prctl(PR_SET_DUMPABLE, 0) took effect (PR_GET_DUMPABLE now answers 0). */
  nonDumpable: boolean;
  /** RLIMIT_CORE is 0 (soft and hard). */
  noCoreDumps: boolean;
  problems: string[];
}

const PR_GET_DUMPABLE = 3;
const PR_SET_DUMPABLE = 4;
const RLIMIT_CORE = 4;

type Native = {
  prctl: (option: number, a2: number, a3: number, a4: number, a5: number) => number;
  setrlimit: (resource: number, limit: { rlim_cur: number; rlim_max: number }) => number;
  /** fcntl(fd, cmd, int) through koffi's variadic call: the extra argument's type comes first. */
  fcntl: (fd: number, cmd: number, type: "int", arg: number) => number;
};

const F_GETFD = 1;
const F_SETFD = 2;
const FD_CLOEXEC = 1;

let native: Promise<Native> | undefined;

/** Loaded once per process (koffi refuses to declare the same struct twice). */
function loadNative(): Promise<Native> {
  native ??= bindLibc();
  return native;
}

type Koffi = typeof import("koffi").default;

/**
 * The directories Node searches for `node_modules` packages from inside `dir`, nearest
 * first (as Node's module paths: `/a/node_modules/b` searches `/a/node_modules/b/node_modules`
 * and then `/a/node_modules`).
 */
function nodeModulesDirs(dir: string): string[] {
  const dirs: string[] = [];
  for (let current = dir; ; current = dirname(current)) {
    dirs.push(basename(current) === "node_modules" ? current : join(current, "node_modules"));
    if (dirname(current) === current) return dirs;
  }
}

/** The directory of package `name` as Node would find it from inside `dir` (following links). */
function findPackage(name: string, dir: string): string | undefined {
  for (const modules of nodeModulesDirs(dir)) {
    const candidate = join(modules, name);
    if (existsSync(join(candidate, "package.json"))) return realpathSync(candidate);
  }
  return undefined;
}

/**
 * koffi's prebuilt native module, loaded straight from the platform package koffi depends
 * on (`@koromix/koffi-<platform>-<arch>/<platform>_<arch>/koffi.node`); undefined when it
 * is not there or does not load (musl builds, another layout), and koffi's own entry
 * does the search. That entry copies every property of node:util and node:fs into
 * namespace objects, which runs their lazy getters (stderr's stream, util's diff
 * colours, TextDecoder): about 10 ms of CPU on every serve start, before it listens. The
 * native module is the same API the entry re-exports. The packages are found the way
 * Node's resolver would (koffi from this file, the platform package from koffi), by
 * looking at those directories: Node's resolver costs ~1.5 ms on its first use, and serve
 * uses it for nothing else before it listens.
 */
export function koffiNative(
  platform: string = process.platform,
  arch: string = process.arch,
): Koffi | undefined {
  try {
    const koffi = findPackage("koffi", dirname(fileURLToPath(import.meta.url)));
    if (koffi === undefined) return undefined;
    const { version } = JSON.parse(readFileSync(join(koffi, "package.json"), "utf8")) as {
      version: string;
    };
    const pkg = findPackage(`@koromix/koffi-${platform}-${arch}`, koffi);
    if (pkg === undefined) return undefined;
    const loaded = { exports: {} as Koffi & { version?: string } };
    process.dlopen(loaded, join(pkg, `${platform}_${arch}`, "koffi.node"));
    // koffi's entry refuses a native module of another version; so does this.
    return loaded.exports.version === version ? loaded.exports : undefined;
  } catch {
    return undefined;
  }
}

async function bindLibc(): Promise<Native> {
  // Plain Node has no prctl(2) or setrlimit(2); koffi (prebuilt FFI, no compiler needed)
  // reaches them in libc. Loaded only here, only by `psi serve`.
  const koffi = koffiNative() ?? (await import("koffi")).default;
  let libc: ReturnType<typeof koffi.load>;
  try {
    libc = koffi.load(null);
    libc.func("int prctl(int, unsigned long, unsigned long, unsigned long, unsigned long)");
  } catch {
    libc = koffi.load("libc.so.6");
  }
  const rlimit = koffi.struct("psi_rlimit", {
    rlim_cur: "unsigned long",
    rlim_max: "unsigned long",
  });
  return {
    prctl: libc.func(
      "int prctl(int, unsigned long, unsigned long, unsigned long, unsigned long)",
    ) as Native["prctl"],
    setrlimit: libc.func("setrlimit", "int", ["int", koffi.pointer(rlimit)]) as Native["setrlimit"],
    fcntl: libc.func("int fcntl(int, int, ...)") as Native["fcntl"],
  };
}

/**
 * Makes this process non-dumpable and disables core dumps (SPEC §13, as gpgsmith's
 * HardenProcess does): other processes of the same user cannot ptrace it or read its
 * memory through /proc, and a crash leaves no core file holding decrypted secrets.
 * Linux only; never throws — the caller logs `problems` as a warning.
 */
export async function hardenProcess(
  platform: NodeJS.Platform = process.platform,
): Promise<HardenResult> {
  const result: HardenResult = { nonDumpable: false, noCoreDumps: false, problems: [] };
  if (platform !== "linux") {
    result.problems.push(`process hardening is implemented for Linux only (this is ${platform})`);
    return result;
  }
  let libc: Native;
  try {
    libc = await loadNative();
  } catch (error) {
    result.problems.push(`cannot load the FFI module for prctl/setrlimit: ${errorMessage(error)}`);
    return result;
  }
  try {
    if (libc.setrlimit(RLIMIT_CORE, { rlim_cur: 0, rlim_max: 0 }) === 0) result.noCoreDumps = true;
    else result.problems.push("setrlimit(RLIMIT_CORE, 0) failed");
  } catch (error) {
    result.problems.push(`setrlimit(RLIMIT_CORE, 0) failed: ${errorMessage(error)}`);
  }
  try {
    if (
      libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) === 0 &&
      libc.prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) === 0
    ) {
      result.nonDumpable = true;
    } else {
      result.problems.push("prctl(PR_SET_DUMPABLE, 0) did not take effect");
    }
  } catch (error) {
    result.problems.push(`prctl(PR_SET_DUMPABLE, 0) failed: ${errorMessage(error)}`);
  }
  return result;
}

/**
 * PR_GET_DUMPABLE of this process (0 after {@link hardenProcess}), or undefined where it
 * cannot be asked. For self-checks and tests.
 */
export async function isDumpable(): Promise<number | undefined> {
  try {
    return (await loadNative()).prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
  } catch {
    return undefined;
  }
}

/**
 * Clears FD_CLOEXEC on `fds` so they survive an execve: Node marks inherited descriptors
 * close-on-exec at startup, and re-executing with `--disable-sigusr1` must keep the
 * sockets systemd passed. Throws when the FFI or fcntl(2) fails.
 */
export async function keepAcrossExec(fds: readonly number[]): Promise<void> {
  const libc = await loadNative();
  for (const fd of fds) {
    const flags = libc.fcntl(fd, F_GETFD, "int", 0);
    if (flags < 0 || libc.fcntl(fd, F_SETFD, "int", flags & ~FD_CLOEXEC) < 0)
      throw new Error(`fcntl(${fd}, F_SETFD) failed`);
  }
}

/** What {@link swapExposure} found. */
export interface SwapExposure {
  /** True when memory of this process cannot reach a swap device. */
  protected: boolean;
  /** Why (no swap, or the cgroup that forbids it), or what to set when exposed. */
  reason: string;
}

/** Where {@link swapExposure} reads (tests point it at other files). */
export interface SwapExposureOptions {
  /** Default /proc/swaps. */
  swaps?: string;
  /** Default /proc/self/cgroup. */
  cgroup?: string;
  /** Where the cgroup v2 hierarchy is mounted (default /sys/fs/cgroup). */
  cgroupRoot?: string;
}

/** The file's text, or `fallback` when it cannot be read. */
function readOr(path: string, fallback: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return fallback;
  }
}

/**
 * Whether serve's memory (keys, tokens, decrypted values) can be swapped out. mlockall
 * is no option for Node: V8 frees pages with madvise(MADV_DONTNEED), which the kernel
 * refuses on locked memory (EINVAL), and V8 aborts. The cgroup can forbid swap instead
 * (systemd's `MemorySwapMax=0`, which the generated serve units set): protected when the
 * host has no active swap, or when the process's cgroup v2 or one above it has
 * `memory.swap.max` 0. Never throws.
 */
export async function swapExposure(options: SwapExposureOptions = {}): Promise<SwapExposure> {
  const fix = "set MemorySwapMax=0 in the serve unit (the generated units do)";
  try {
    // /proc and cgroupfs answer at once: read before serve listens, without the thread pool.
    const swaps = readFileSync(options.swaps ?? "/proc/swaps", "utf8")
      .trim()
      .split("\n");
    if (swaps.length <= 1) return { protected: true, reason: "no swap is active on this host" };
    const cgroups = readFileSync(options.cgroup ?? "/proc/self/cgroup", "utf8");
    const path = /^0::(\/.*)$/m.exec(cgroups)?.[1];
    if (path !== undefined) {
      const root = options.cgroupRoot ?? "/sys/fs/cgroup";
      for (let dir = path; ; dir = dirname(dir)) {
        const max = readOr(join(root, dir, "memory.swap.max"), "");
        if (max.trim() === "0")
          return { protected: true, reason: `cgroup ${dir} forbids swap (memory.swap.max 0)` };
        if (dir === "/") break;
      }
    }
    return {
      protected: false,
      reason: `swap is active and serve's cgroup may use it, so secrets in memory can reach the swap device: ${fix}`,
    };
  } catch (error) {
    return {
      protected: false,
      reason: `cannot tell whether swap is used (${errorMessage(error)}): ${fix}`,
    };
  }
}
