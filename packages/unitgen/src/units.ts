import { basename, dirname } from "node:path";
import { containerCaLines, nativeCaLines } from "./ca.js";
import { cacheWiring } from "./cache-wiring.js";
import { containerExec, nativeExecStart } from "./exec.js";
import { containerHardening, nativeHardening } from "./hardening.js";
import { unitText } from "./ini.js";
import {
  refreshServiceName,
  SERVE_SERVICE,
  SERVE_SOCKET,
  setupServiceName,
  TLS_RENEW_SERVICE,
} from "./names.js";
import type { UnitSettings } from "./settings.js";

/** Options of the native renderers: what `ExecStart=` runs. */
export interface NativeOptions {
  /** Absolute path of the Node binary that runs PSI. */
  nodePath: string;
  /** Absolute path of PSI's `cli.js` (the script Node runs). */
  psiPath: string;
}

/** Options of the quadlet renderers: the PSI image. */
export interface QuadletOptions {
  image: string;
}

/** Serve options: with socket activation serve takes its socket from `psi-secrets.socket`. */
export interface ServeOptions {
  socketActivation?: boolean;
}

function wantedBy(settings: UnitSettings): string {
  return `WantedBy=${settings.scope === "user" ? "default.target" : "multi-user.target"}`;
}

function socketDir(settings: UnitSettings): string {
  return dirname(settings.socket);
}

/** `[Unit]` of the serve unit, native and quadlet alike. */
function serveUnitSection(after: string[], socketActivation: boolean): string[] {
  const lines = [
    "Description=PSI secret lookup service",
    `After=${["network-online.target", ...after, ...(socketActivation ? [SERVE_SOCKET] : [])].join(" ")}`,
    "Wants=network-online.target",
  ];
  if (socketActivation) lines.push(`Requires=${SERVE_SOCKET}`);
  return lines;
}

/**
 * `[Service]` runtime directory of serve. 0700 as SPEC §4 asks for a directory PSI
 * creates; with socket activation it must survive serve's restarts, or systemd would
 * delete the socket file that `psi-secrets.socket` holds.
 */
function runtimeDirectoryLines(settings: UnitSettings, socketActivation: boolean): string[] {
  const lines = [`RuntimeDirectory=${basename(socketDir(settings))}`, "RuntimeDirectoryMode=0700"];
  if (socketActivation) lines.push("RuntimeDirectoryPreserve=yes");
  return lines;
}

/** `psi-secrets.service` (native): the lookup service. */
export function renderServeUnit(
  settings: UnitSettings,
  options: NativeOptions & ServeOptions,
): string {
  const socketActivation = options.socketActivation === true;
  const cache = cacheWiring(settings, SERVE_SERVICE, "serve");
  return unitText([
    ["Unit", serveUnitSection(cache.after, socketActivation)],
    [
      "Service",
      [
        "Type=simple",
        "Restart=on-failure",
        ...runtimeDirectoryLines(settings, socketActivation),
        "StateDirectory=psi",
        // Node's compile cache (/var/cache/psi, ~/.cache/psi): writable under ProtectSystem=strict.
        "CacheDirectory=psi",
        ...cache.service,
        ...nativeCaLines(settings),
        nativeExecStart(settings, options, "serve", ["serve"]),
        ...nativeHardening(settings, "serve"),
      ],
    ],
    ["Install", [wantedBy(settings)]],
  ]);
}

/** `psi-secrets.container` (quadlet): the lookup service; ready once its health check passes. */
export function renderServeQuadlet(
  settings: UnitSettings,
  options: QuadletOptions & ServeOptions,
): string {
  const socketActivation = options.socketActivation === true;
  const cache = cacheWiring(settings, SERVE_SERVICE, "serve");
  const runDir = socketDir(settings);
  return unitText([
    ["Unit", serveUnitSection(cache.after, socketActivation)],
    [
      "Container",
      [
        "ContainerName=psi-secrets",
        `Image=${options.image}`,
        containerExec(settings, ["serve"]),
        "Network=host",
        "SecurityLabelType=container_runtime_t",
        "Notify=healthy",
        `HealthCmd=curl -sf --unix-socket ${settings.socket} http://localhost/healthz`,
        "HealthInterval=30s",
        "HealthRetries=10",
        "HealthStartPeriod=60s",
        "HealthTimeout=5s",
        `Volume=${settings.configDir}:${settings.configDir}:ro`,
        `Volume=${settings.stateDir}:${settings.stateDir}:Z`,
        `Volume=${runDir}:${runDir}:Z`,
        ...containerCaLines(settings),
        ...cache.container,
        ...containerHardening("serve"),
      ],
    ],
    // Never Type=: quadlet sets Type=notify, which Notify=healthy drives.
    [
      "Service",
      [
        "Restart=on-failure",
        ...runtimeDirectoryLines(settings, socketActivation),
        ...cache.service,
        "LimitCORE=0",
        "MemorySwapMax=0", // the container's cgroup is below the service's: no swap for secrets
      ],
    ],
    ["Install", [wantedBy(settings)]],
  ]);
}

/** `[Unit]` of a setup unit: after serve (and the network for providers that fetch). */
function setupUnitSection(provider: string, after: string[]): string[] {
  const needsNetwork = provider === "infisical";
  const lines = [
    `Description=PSI ${provider} secrets setup`,
    `After=${[...(needsNetwork ? ["network-online.target"] : []), SERVE_SERVICE, ...after].join(" ")}`,
  ];
  if (needsNetwork) lines.push("Wants=network-online.target");
  lines.push(`Requires=${SERVE_SERVICE}`);
  return lines;
}

/** `psi-<provider>-setup.service` (native): oneshot `psi setup --provider <p>`. */
export function renderSetupUnit(
  settings: UnitSettings,
  provider: string,
  options: NativeOptions,
): string {
  const cache = cacheWiring(settings, setupServiceName(provider), "setup");
  return unitText([
    ["Unit", setupUnitSection(provider, cache.after)],
    [
      "Service",
      [
        "Type=oneshot",
        "RemainAfterExit=yes",
        ...cache.service,
        ...nativeCaLines(settings),
        nativeExecStart(settings, options, "other", ["setup", "--provider", provider]),
        ...nativeHardening(settings, "setup"),
      ],
    ],
    ["Install", [wantedBy(settings)]],
  ]);
}

/** `psi-<provider>-setup.container` (quadlet): setup with config, state, quadlet dir, Podman and D-Bus. */
export function renderSetupQuadlet(
  settings: UnitSettings,
  provider: string,
  options: QuadletOptions,
): string {
  const unit = setupServiceName(provider);
  const cache = cacheWiring(settings, unit, "setup");
  return unitText([
    ["Unit", setupUnitSection(provider, cache.after)],
    [
      "Container",
      [
        `ContainerName=${unit.replace(/\.service$/, "")}`,
        `Image=${options.image}`,
        containerExec(settings, ["setup", "--provider", provider]),
        "Network=host",
        "SecurityLabelType=container_runtime_t",
        `Volume=${settings.configDir}:${settings.configDir}:ro`,
        `Volume=${settings.stateDir}:${settings.stateDir}:Z`,
        `Volume=${settings.systemdDir}:${settings.systemdDir}:Z`,
        `Volume=${settings.podmanSocket}:${settings.podmanSocket}:z`,
        `Volume=${settings.dbusSocket}:${settings.dbusSocket}`,
        ...containerCaLines(settings),
        ...cache.container,
        ...containerHardening("setup"),
      ],
    ],
    ["Service", ["Type=oneshot", "RemainAfterExit=yes", ...cache.service, "LimitCORE=0"]],
    ["Install", [wantedBy(settings)]],
  ]);
}

/**
 * `psi-<provider>-refresh.service`: restarts the setup unit. A plain oneshot (no
 * `RemainAfterExit=`) so the timer's `OnUnitActiveSec=` re-arms; the setup unit's own
 * `RemainAfterExit=yes` would freeze its activation time.
 */
export function renderRefreshService(settings: UnitSettings, provider: string): string {
  const setup = setupServiceName(provider);
  const systemctl = settings.scope === "user" ? "/usr/bin/systemctl --user" : "/usr/bin/systemctl";
  return unitText([
    ["Unit", [`Description=PSI ${provider} cache refresh`, `After=${setup}`]],
    ["Service", ["Type=oneshot", `ExecStart=${systemctl} restart ${setup}`]],
  ]);
}

/** `psi-<provider>-refresh.timer`: every `refresh_interval`, randomized, caught up after downtime. */
export function renderRefreshTimer(settings: UnitSettings, provider: string): string {
  const interval = settings.cache?.refreshInterval ?? "1h";
  return unitText([
    ["Unit", [`Description=Periodic PSI ${provider} cache refresh`]],
    [
      "Timer",
      [
        `Unit=${refreshServiceName(provider)}`,
        `OnBootSec=${interval}`,
        `OnUnitActiveSec=${interval}`,
        `RandomizedDelaySec=${settings.cache?.refreshRandomizedDelay ?? "5m"}`,
        "Persistent=true",
      ],
    ],
    ["Install", ["WantedBy=timers.target"]],
  ]);
}

const TLS_UNIT_SECTION = [
  "Description=PSI TLS certificate renewal",
  "After=network-online.target",
  "Wants=network-online.target",
];

/** `psi-tls-renew.service` (native): `psi infisical tls renew`. */
export function renderTlsRenewUnit(settings: UnitSettings, options: NativeOptions): string {
  return unitText([
    ["Unit", TLS_UNIT_SECTION],
    [
      "Service",
      [
        "Type=oneshot",
        ...nativeCaLines(settings),
        nativeExecStart(settings, options, "other", ["infisical", "tls", "renew"]),
      ],
    ],
  ]);
}

/** `psi-tls-renew.container` (quadlet): mounts every certificate output directory. */
export function renderTlsRenewQuadlet(settings: UnitSettings, options: QuadletOptions): string {
  return unitText([
    ["Unit", TLS_UNIT_SECTION],
    [
      "Container",
      [
        `ContainerName=${TLS_RENEW_SERVICE.replace(/\.service$/, "")}`,
        `Image=${options.image}`,
        containerExec(settings, ["infisical", "tls", "renew"]),
        "Network=host",
        `Volume=${settings.configDir}:${settings.configDir}:ro`,
        `Volume=${settings.stateDir}:${settings.stateDir}:Z`,
        ...settings.tlsOutputDirs.map((dir) => `Volume=${dir}:${dir}:Z`),
        ...containerCaLines(settings),
      ],
    ],
    ["Service", ["Type=oneshot"]],
  ]);
}

/** `psi-tls-renew.timer`: daily, randomized by an hour, caught up after downtime. */
export function renderTlsRenewTimer(): string {
  return unitText([
    ["Unit", ["Description=Daily PSI TLS certificate renewal"]],
    ["Timer", ["OnCalendar=daily", "RandomizedDelaySec=1h", "Persistent=true"]],
    ["Install", ["WantedBy=timers.target"]],
  ]);
}

/** `psi-secrets.socket`: systemd holds the socket, so lookups queue while serve starts. */
export function renderServeSocket(settings: UnitSettings): string {
  return unitText([
    ["Unit", ["Description=PSI secret lookup socket"]],
    ["Socket", [`ListenStream=${settings.socket}`, "SocketMode=0600", "DirectoryMode=0700"]],
    ["Install", ["WantedBy=sockets.target"]],
  ]);
}
