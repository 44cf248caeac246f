export {
  decodeNitrokeyHsmBlob,
  NITROKEYHSM_PROVIDER,
  type NitrokeyHsmMapping,
  openNitrokeyHsmMapping,
  sealNitrokeyHsmMapping,
} from "./blob.js";
export {
  type InitNitrokeyHsmOptions,
  type InitNitrokeyHsmResult,
  initNitrokeyHsm,
} from "./init.js";
export {
  PCSCD_IMAGE,
  type PcscdFile,
  type PcscdMode,
  type PcscdSetup,
  type PcscdSetupOptions,
  renderPcscdSetup,
} from "./pcscd.js";
export {
  PREFLIGHT_STEPS,
  type PreflightOptions,
  type PreflightReport,
  type PreflightStep,
  type PreflightStepId,
  preflightNitrokeyHsm,
} from "./preflight.js";
export {
  createNitrokeyHsmProvider,
  type NitrokeyHsmProviderOptions,
  nitrokeyhsmProvider,
} from "./provider.js";
export {
  type NitrokeyHsmSettings,
  nitrokeyHsmProviderSettings,
  nitrokeyHsmSettings,
} from "./settings.js";
export {
  countNitrokeyHsmMappings,
  judgeNitrokeyHsmStatus,
  type MappingCount,
  type NitrokeyHsmStatus,
  type NitrokeyHsmStatusVerdict,
  nitrokeyHsmStatus,
  type StatusOptions,
  type TestPinOptions,
  type TestPinResult,
  testHsmPin,
  testPinError,
} from "./status.js";
export {
  readStorePublicKey,
  type SealedNitrokeyHsmSecret,
  type StoredMapping,
  type StoreKeyOptions,
  type StorePublicKey,
  sealForStore,
  sealNitrokeyHsmSecret,
} from "./store.js";
