// @psi/ops: PSI's host-level operations as library functions with typed results. The CLI
// (apps/psi) parses arguments, calls these and renders; a Cockpit plugin, an Ansible
// module or a deployment script can call the same functions.

export {
  assertCacheBackend,
  type CacheInitOptions,
  type CacheInitResult,
  type CacheLocations,
  type CacheStatusReport,
  type CacheVerifyReport,
  cacheInitializers,
  cacheLocations,
  cacheStatus,
  cacheStatusJson,
  describeMapping,
  type HostCacheInitOptions,
  type HostInvalidateOptions,
  type InvalidateResult,
  type InvalidateTarget,
  initCache,
  initHostCache,
  invalidateCache,
  invalidateHostCache,
  invalidateResultJson,
  listCacheBackends,
  type ResolveTargetsOptions,
  resolveInvalidateTargets,
  verifyCache,
} from "./cache.js";
export {
  DEMO_SAMPLES,
  type DemoHost,
  type DemoPodmanOptions,
  type DemoPodmanResult,
  type DemoServe,
  type DemoServeOptions,
  demoEnvironment,
  demoLookup,
  demoSocketPath,
  demoThroughPodman,
  prepareDemoHost,
  startDemoServe,
} from "./demo.js";
export {
  type DriverInstall,
  type DriverInstallOptions,
  expectedDriverOptions,
  installDriverConf,
  planDriverInstall,
} from "./driver.js";
export {
  backendFactory,
  backendNames,
  type Host,
  type HostOptions,
  openHost,
  providerFactory,
  providerNames,
} from "./host.js";
export {
  importPodmanSecrets,
  importQuadlets,
  type PodmanSecretImportOptions,
  type PodmanSourceOptions,
  type QuadletImportOptions,
} from "./infisical-import.js";
export {
  PCSCD_BUILD_DIR,
  type PcscdSetupOptions,
  type PcscdSetupResult,
  type PlacedPcscdFile,
  pcscdSetupJson,
  setupPcscd,
} from "./pcscd.js";
export {
  dryRunHostSetup,
  type HostSetupOptions,
  type RunHostSetupOptions,
  runHostSetup,
} from "./setup.js";
export {
  getOnSocket,
  lookupSocketPath,
  SOCKET_TIMEOUT_MS,
  type SocketAnswer,
  socketProblem,
  type WaitForServeLoadOptions,
  waitForServeLoad,
} from "./socket.js";
export {
  type CacheReport,
  collectStatus,
  type DriftReport,
  type ProviderReport,
  type ServeMetrics,
  type ServeStatus,
  type StatusIssue,
  type StatusOptions,
  type StatusReport,
  statusReportJson,
} from "./status.js";
export {
  type RegisteredSecret,
  type RegisterSecretOptions,
  registerSealedSecret,
} from "./store.js";
export {
  requestSystemd,
  type SystemdRequest,
  type TimerSchedule,
  type TimerState,
  timerSchedule,
  timerState,
} from "./systemd.js";
export { type InstallUnitsOptions, installUnits, type UnitsInstall } from "./units.js";
