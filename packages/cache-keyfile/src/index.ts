export {
  createKeyfileCacheBackend,
  defaultKeyfilePath,
  type InitKeyfileOptions,
  initKeyfile,
  KEYFILE_KEY_LENGTH,
  KEYFILE_TAG,
  type KeyfileBackendOptions,
  keyfileCacheBackend,
  keyfileCacheBackendFromKey,
  keyfilePathOf,
  readKeyfile,
} from "./keyfile.js";
