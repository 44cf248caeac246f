export {
  type AwsCredentials,
  parseIni,
  resolveAwsCredentials,
  signGetCallerIdentity,
} from "./aws.js";
export {
  type CallOptions,
  type CertificateRequest,
  createInfisicalClient,
  type InfisicalClient,
  type InfisicalClientOptions,
  type ListedSecret,
  normalizeSecretPath,
  type WriteOutcome,
} from "./client.js";
export { type InfisicalError, type InfisicalErrorCode, infisicalErrorStatus } from "./errors.js";
export type { FetchFn } from "./http.js";
export {
  createInfisicalProvider,
  type InfisicalProviderOptions,
  type InfisicalSource,
  infisicalProvider,
  parseInfisicalSource,
} from "./provider.js";
export {
  isRetryableInfisicalError,
  jitteredSeconds,
  type RateLimitPolicy,
  RETRYABLE_STATUSES,
  type RetryOptions,
  rateLimitWaitMs,
  retryAfterSeconds,
  setupRetry,
  withInfisicalRetry,
} from "./retry.js";
export {
  GetSecretResponseSchema,
  type IssuedCertificate,
  ListSecretsResponseSchema,
  LoginResponseSchema,
  parseAnswer,
} from "./schemas.js";
export { encodeTokenFile, tokenCacheFileName } from "./token-cache.js";
export {
  type EnvFileEntry,
  type ParsedEnvFile,
  parseEnvFile,
} from "./tooling/env-file.js";
export {
  dotenvQuote,
  type EnvFormat,
  type FormattedSecrets,
  formatSecrets,
  isShellName,
  type SkippedKey,
  shellQuote,
} from "./tooling/env-format.js";
export {
  type ConflictPolicy,
  type ImportItem,
  type ImportOptions,
  type ImportOutcome,
  type ImportReport,
  type ImportResult,
  importSecrets,
  secretKeyProblem,
} from "./tooling/import.js";
export {
  envFileImportItems,
  type ImportSource,
  type PodmanImportOptions,
  type PodmanImportWant,
  podmanImportItems,
  type QuadletReference,
  quadletImportItems,
  withEnvironment,
} from "./tooling/import-sources.js";
export { type LoginCheck, loginAll } from "./tooling/login-all.js";
export {
  contextClientOptions,
  type ImportRun,
  type InfisicalEnvOptions,
  type InfisicalImportTarget,
  type InfisicalTarget,
  type InfisicalWriteFileOptions,
  importEnvFile,
  infisicalEnv,
  infisicalImport,
  infisicalLogin,
  infisicalSettings,
  infisicalTls,
  infisicalWriteFile,
  openInfisicalClient,
  readImportInput,
  readQuadletImport,
} from "./tooling/operations.js";
export {
  type PodmanSecretRef,
  type ResolvePodmanSecretOptions,
  resolvePodmanSecretValue,
} from "./tooling/podman-secrets.js";
export {
  type ParsedQuadlet,
  parseQuadlet,
  type QuadletEnvironment,
  type QuadletSecret,
} from "./tooling/quadlet.js";
export {
  certificateNotAfter,
  createTlsManager,
  type HookResult,
  type HookRunner,
  type TlsManager,
  type TlsManagerOptions,
  type TlsResult,
  type TlsState,
  TlsStateSchema,
  type TlsStatus,
  tlsRunOk,
  tlsStateFileName,
} from "./tooling/tls.js";
export { splitCommandLine, splitUnitWords } from "./tooling/words.js";
export {
  parseFileMode,
  type WriteSecretFileOptions,
  writeSecretFile,
} from "./tooling/write-file.js";
