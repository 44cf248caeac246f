import { type PsiContext, PsiError } from "@psi/core";
import { sealLocal } from "./local.js";

/**
 * `psi local store` (SPEC §8.3): seals the value `read` returns with the context's cache
 * backend as a local mapping, then zeroes the value. Refuses before reading when
 * providers.local is not configured, and when no cache backend is configured to seal with.
 */
export async function sealLocalSecret(
  context: PsiContext,
  read: () => Promise<Uint8Array>,
): Promise<Uint8Array> {
  if (context.config.providers?.local === undefined) {
    throw new PsiError("local.not_configured", "the local provider is not configured", {
      hint: "add `providers: { local: {} }` to the configuration, so that psi serve can open local secrets",
    });
  }
  const value = await read();
  try {
    const backend = await context.openCacheBackend?.();
    if (backend === undefined) {
      throw new PsiError(
        "local.no_backend",
        "local secrets are sealed with the cache backend, and none is configured",
        { hint: "set cache.backend (keyfile, tpm or hsm) and run `psi cache init --backend ...`" },
      );
    }
    return await sealLocal(backend, value);
  } finally {
    value.fill(0);
  }
}
