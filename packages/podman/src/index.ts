export {
  type CreateSecretOptions,
  createPodmanClient,
  PODMAN_API_PREFIX,
  type PodmanCallOptions,
  type PodmanClient,
  type PodmanClientOptions,
  type PodmanSecret,
} from "./client.js";
export { type PodmanSocketOptions, podmanSocketPath } from "./socket.js";
