export {
  createTpmCacheBackend,
  defaultTpmKeyPath,
  loadCredentialDirective,
  readTpmKey,
  TPM_CREDENTIAL_NAME,
  TPM_KEY_LENGTH,
  TPM_TAG,
  type TpmBackendOptions,
  type TpmKeyOptions,
  tpmCacheBackend,
  tpmCacheBackendFromKey,
} from "./backend.js";
export {
  type InitTpmKeyOptions,
  type InitTpmKeyResult,
  initTpmKey,
  TPM_WITH_KEYS,
  type TpmWithKey,
} from "./init.js";
