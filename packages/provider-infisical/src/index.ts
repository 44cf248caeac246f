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
  RETRYABLE_STATUSES,
  type RetryOptions,
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
