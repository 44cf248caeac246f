export { SD_LISTEN_FDS_START, socketActivation } from "./activation.js";
export { checkPrivateDir, type PrivateDirOptions } from "./dir-check.js";
export {
  type HardenResult,
  hardenProcess,
  isDumpable,
  keepAcrossExec,
  koffiNative,
  type SwapExposure,
  type SwapExposureOptions,
  swapExposure,
} from "./harden.js";
export {
  closeServe,
  prepareServeDirs,
  type ReloadServeOptions,
  reloadServe,
  type ServeDirsOptions,
} from "./lifecycle.js";
export {
  createMetrics,
  type LookupOutcome,
  type LookupSource,
  type MetricSample,
  type Metrics,
  parsePrometheus,
} from "./metrics.js";
export {
  type LookupOnceOptions,
  lazyProviders,
  listMappingIds,
  lookupOnce,
  type OneShotOptions,
  removeMappingOnce,
  secretIdFromEnv,
  storeMappingOnce,
} from "./oneshot.js";
export {
  openConfiguredServeCache,
  type ServeHandle,
  type StartServeOptions,
  startServe,
} from "./serve.js";
export {
  createLookupServer,
  type ListenTarget,
  type LookupBackends,
  type LookupServer,
  type LookupServerOptions,
  MAX_STORE_BYTES,
} from "./server.js";
export {
  createLookupService,
  isLookupFailure,
  type LookupAnswer,
  LookupFailure,
  type LookupFailureCode,
  type LookupService,
  type LookupServiceOptions,
} from "./service.js";
export {
  type ResolveSocketTokenOptions,
  resolveSocketToken,
  SOCKET_TOKEN_CREDENTIAL,
  SOCKET_TOKEN_PATTERN,
  type SocketTokenResolution,
  type SocketTokenSource,
} from "./token.js";
