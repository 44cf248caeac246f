import type { UnitSettings } from "./settings.js";

/** Where the CA bundle is mounted in PSI's containers (the reference's path). */
export const CONTAINER_CA_PATH = "/etc/ssl/certs/ca-certificates.crt";

/**
 * Makes `ca_cert` trusted inside a PSI container: mounted over the image's bundle,
 * `SSL_CERT_FILE` for OpenSSL-based tools (curl, the reference), and
 * `NODE_EXTRA_CA_CERTS` because Node's TLS uses its own root store and reads neither.
 */
export function containerCaLines(settings: UnitSettings): string[] {
  if (!settings.caCert) return [];
  return [
    `Volume=${settings.caCert}:${CONTAINER_CA_PATH}:ro`,
    `Environment=SSL_CERT_FILE=${CONTAINER_CA_PATH}`,
    `Environment=NODE_EXTRA_CA_CERTS=${CONTAINER_CA_PATH}`,
  ];
}

/** Native units: Node only trusts `ca_cert` when told through `NODE_EXTRA_CA_CERTS`. */
export function nativeCaLines(settings: UnitSettings): string[] {
  return settings.caCert ? [`Environment=NODE_EXTRA_CA_CERTS=${settings.caCert}`] : [];
}
