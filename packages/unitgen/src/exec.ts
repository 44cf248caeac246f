import type { UnitSettings } from "./settings.js";

/**
 * Node's flags for PSI's processes, by command: `serve` (the long-running lookup service)
 * and everything else (setup, TLS renewal). `--disable-sigusr1` keeps SIGUSR1 from
 * opening the inspector, which would let any process of the same user read secrets.
 * serve's V8 flags keep its memory small under load: a 1 MB young generation, a 256 MB
 * old-generation ceiling (which also makes V8 grow the heap in small steps), and no GC or
 * compiler helper threads. They are chosen to leave V8's flag hash alone: flags such as
 * `--single-threaded` or `--optimize-for-size` change it, so Node's built-in code cache is
 * refused and every built-in module compiles from source (~10 ms more at each start).
 * Measured in docs/performance.md. The CLI re-executes `psi serve` with this same list
 * when it was started without it.
 */
export const NODE_FLAGS = {
  serve: [
    "--disable-sigusr1",
    "--max-semi-space-size=1",
    "--max-old-space-size=256",
    "--single-threaded-gc",
    "--no-concurrent-recompilation",
    "--no-concurrent-sparkplug",
  ],
  other: ["--disable-sigusr1"],
} as const satisfies Record<string, readonly string[]>;

/** Which {@link NODE_FLAGS} entry a command runs with. */
export type NodeFlagsFor = keyof typeof NODE_FLAGS;

/** Where psi looks for its config inside the PSI image (it runs as root there). */
export const CONTAINER_CONFIG = "/etc/psi/config.yaml";

/** `-c <file>` when psi would not find the config by itself (native: the scope's default). */
export function nativeConfigArgs(settings: UnitSettings): string[] {
  return settings.configFile === settings.defaultConfigFile ? [] : ["-c", settings.configFile];
}

/** `-c <file>` when the mounted config is not at the image's default path. */
export function containerConfigArgs(settings: UnitSettings): string[] {
  return settings.configFile === CONTAINER_CONFIG ? [] : ["-c", settings.configFile];
}

/**
 * A native `ExecStart=`: the absolute Node, its flags, the absolute `cli.js`, the command
 * and `-c` when needed. Never `/usr/bin/env node`, whose lookup depends on systemd's PATH.
 */
export function nativeExecStart(
  settings: UnitSettings,
  exec: { nodePath: string; psiPath: string },
  flags: NodeFlagsFor,
  command: string[],
): string {
  const argv = [
    exec.nodePath,
    ...NODE_FLAGS[flags],
    exec.psiPath,
    ...command,
    ...nativeConfigArgs(settings),
  ];
  return `ExecStart=${argv.join(" ")}`;
}

/** A quadlet `Exec=`: the command (the image's entrypoint is psi) and `-c` when needed. */
export function containerExec(settings: UnitSettings, command: string[]): string {
  return `Exec=${[...command, ...containerConfigArgs(settings)].join(" ")}`;
}
