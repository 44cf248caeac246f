// @psi/unitgen: pure functions from settings to the text of PSI's systemd units,
// quadlets, drop-ins and containers.conf.d file (SPEC §5, §9, §10). No I/O.
export { CONTAINER_CA_PATH } from "./ca.js";
export { type CacheWiring, cacheWiring } from "./cache-wiring.js";
export { DRIVER_CONF_NAME, driverConfMode, renderDriverConf } from "./driver-conf.js";
export { renderSecretsDropIn, secretsDropInPath } from "./drop-in.js";
export {
  CONTAINER_CONFIG,
  containerConfigArgs,
  NODE_FLAGS,
  type NodeFlagsFor,
  nativeConfigArgs,
} from "./exec.js";
export {
  containerHardening,
  type HardenedRole,
  nativeHardening,
  writablePaths,
} from "./hardening.js";
export {
  providerFetchesRemotely,
  quadletName,
  refreshServiceName,
  refreshTimerName,
  SERVE_SERVICE,
  SERVE_SOCKET,
  setupServiceName,
  TLS_RENEW_SERVICE,
  TLS_RENEW_TIMER,
} from "./names.js";
export {
  type RenderedFile,
  type RenderUnitsOptions,
  renderUnits,
  type UnitMode,
  unitsToEnable,
} from "./render.js";
export { type UnitCacheSettings, type UnitSettings, unitSettingsFromConfig } from "./settings.js";
export {
  type NativeOptions,
  type QuadletOptions,
  renderRefreshService,
  renderRefreshTimer,
  renderServeQuadlet,
  renderServeSocket,
  renderServeUnit,
  renderSetupQuadlet,
  renderSetupUnit,
  renderTlsRenewQuadlet,
  renderTlsRenewTimer,
  renderTlsRenewUnit,
  type ServeOptions,
} from "./units.js";
