export {
  createLocalProvider,
  LOCAL_PROVIDER,
  type LocalProviderOptions,
  localProvider,
  openLocalBlob,
  sealLocal,
  sealLocalBlob,
} from "./local.js";
export { sealLocalSecret } from "./store.js";
