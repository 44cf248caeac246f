export {
  AES_KEY_LENGTH,
  aesGcmBackend,
  GCM_TAG_LENGTH,
  NONCE_LENGTH,
  openAesGcm,
  sealAesGcm,
} from "./aes-gcm.js";
export { type DecodeOptions, decodeCacheFile, encodeCacheFile } from "./cache-file.js";
export { cacheKey, cacheKeyer } from "./cache-key.js";
export { canonicalMapping } from "./canonical.js";
export type { CacheCipher, RandomBytes, RandomOptions } from "./cipher.js";
export {
  EnvelopeError,
  type EnvelopeErrorCode,
  type EnvelopeErrorOptions,
  isEnvelopeError,
} from "./errors.js";
export {
  BACKEND_TAGS,
  type BackendName,
  backendName,
  ENVELOPE_VERSION,
  formatTag,
  HEADER_LENGTH,
  MAGIC,
  type ReadOptions,
  readHeader,
  TAG_HSM,
  TAG_KEYFILE,
  TAG_TPM,
  writeHeader,
} from "./header.js";
export {
  type HybridBackendOptions,
  hybridBackend,
  type OaepHash,
  openHybrid,
  sealHybrid,
  softwareUnwrap,
  type Unwrap,
} from "./hybrid.js";
export {
  type CacheContents,
  type DecodedCache,
  decodePayload,
  encodePayload,
  HMAC_KEY_LENGTH,
  PAYLOAD_VERSION,
} from "./payload.js";
export {
  compareCodePoints,
  type PythonJsonOptions,
  pythonFloatRepr,
  pythonJsonDumps,
  pythonJsonString,
  sortByCodePoint,
} from "./python-json.js";
