import type { CacheBackendFactory, ProviderFactory } from "@psi/core";
import { PsiError } from "@psi/core";

// The only place that knows which providers and cache backends exist. Each loads on first
// use, so `psi cache status` never pays for PKCS#11 or HTTP clients.
const providers: Record<string, () => Promise<ProviderFactory>> = {
  infisical: async () => (await import("@psi/provider-infisical")).infisicalProvider,
  nitrokeyhsm: async () => (await import("@psi/provider-nitrokeyhsm")).nitrokeyhsmProvider,
  local: async () => (await import("@psi/provider-local")).localProvider,
};

const backends: Record<string, () => Promise<CacheBackendFactory>> = {
  tpm: async () => (await import("@psi/cache-tpm")).tpmCacheBackend,
  hsm: async () => (await import("@psi/cache-hsm")).hsmCacheBackend,
  keyfile: async () => (await import("@psi/cache-keyfile")).keyfileCacheBackend,
};

/** Names of every provider PSI knows. */
export const providerNames = Object.keys(providers);
/** Names of every cache backend PSI knows. */
export const backendNames = Object.keys(backends);

/** The factory for a provider name. */
export async function providerFactory(name: string): Promise<ProviderFactory> {
  const load = providers[name];
  if (!load) {
    throw new PsiError("provider.unknown", `unknown provider "${name}"`, {
      hint: `known providers: ${providerNames.join(", ")}`,
    });
  }
  return load();
}

/** The factory for a cache backend name. */
export async function backendFactory(name: string): Promise<CacheBackendFactory> {
  const load = backends[name];
  if (!load) {
    throw new PsiError("cache.unknown_backend", `unknown cache backend "${name}"`, {
      hint: `known backends: ${backendNames.join(", ")}`,
    });
  }
  return load();
}
