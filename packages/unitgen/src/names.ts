/** Unit and file names shared by the renderers, the CLI and setup. */
export const SERVE_SERVICE = "psi-secrets.service";
export const SERVE_SOCKET = "psi-secrets.socket";
export const TLS_RENEW_SERVICE = "psi-tls-renew.service";
export const TLS_RENEW_TIMER = "psi-tls-renew.timer";

/** `psi-<provider>-setup.service`: what setup runs as (native or quadlet-generated). */
export function setupServiceName(provider: string): string {
  return `psi-${provider}-setup.service`;
}

/** `psi-<provider>-refresh.service`: the oneshot the refresh timer starts. */
export function refreshServiceName(provider: string): string {
  return `psi-${provider}-refresh.service`;
}

/** `psi-<provider>-refresh.timer`. */
export function refreshTimerName(provider: string): string {
  return `psi-${provider}-refresh.timer`;
}

/** Quadlet source name for a generated service: `x.service` → `x.container`. */
export function quadletName(service: string): string {
  return service.replace(/\.service$/, ".container");
}

/**
 * Providers whose setup fetches from a remote service, so a cache refresh timer makes
 * sense (nitrokeyhsm and local secrets are stored on the host and never refreshed).
 */
export function providerFetchesRemotely(provider: string): boolean {
  return provider === "infisical";
}
