export { hsmCacheBackend } from "./backend.js";
export {
  type NitrokeyHsm,
  nitrokeyHsmDefaults,
  type OpenNitrokeyHsmOptions,
  openNitrokeyHsm,
} from "./nitrokeyhsm.js";
export { type ResolvedHsmPin, type ResolveHsmPinOptions, resolveHsmPin } from "./pin.js";
export {
  normalizePublicKey,
  type PinResult,
  PUBLIC_KEY_CACHE_FILE,
  PUBLIC_KEY_PIN_FILE,
  pinPublicKey,
  publicKeyCachePath,
  publicKeyFingerprint,
  publicKeyPinPath,
  readPublicKeyCache,
  readPublicKeyPin,
  verifyPublicKeyPin,
  writePublicKeyCache,
} from "./public-key.js";
export {
  type HsmSession,
  type HsmSessionInfo,
  type HsmSessionOptions,
  type HsmTokenSlot,
  listHsmSlots,
  type OaepHash,
  openHsmSession,
} from "./session.js";
