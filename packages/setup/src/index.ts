// @psi/setup: `psi setup` as a library (SPEC §9), so deployment scripts can run a setup
// without the CLI: provider listing, Podman registration, drift, drop-ins, cache refresh,
// daemon-reload, restarts of workloads whose values changed, and the dry run.
export {
  type DaemonReloadOptions,
  type DaemonReloadOutcome,
  daemonReload,
} from "./daemon-reload.js";
export { differingDriverOptions, parseDriverOptions } from "./driver-options.js";
export { type DropInWrite, dropInPath, readDropInSecrets, writeDropIn } from "./drop-in.js";
export {
  type DryRunOptions,
  type DryRunReport,
  type DryRunSecret,
  type DryRunWorkload,
  planDryRun,
  type SecretClass,
} from "./dry-run.js";
export { createLimit, type Limit } from "./limit.js";
export { keyProblem, ownerOf, podmanSecretName } from "./names.js";
export {
  isTemplateUnit,
  type RestartOptions,
  type RestartResult,
  restartUnit,
  restartUnitOf,
} from "./restart.js";
export {
  DEFAULT_CONCURRENCY,
  runSetup,
  type SetupCache,
  type SetupFailures,
  type SetupOptions,
  type SetupRetry,
  setupFailures,
} from "./run.js";
export { runTool, type ToolRun } from "./run-tool.js";
export type {
  CacheOutcome,
  DriftEntry,
  SetupIssue,
  SetupProgress,
  SetupResult,
  WorkloadChanges,
  WorkloadOutcome,
} from "./types.js";
