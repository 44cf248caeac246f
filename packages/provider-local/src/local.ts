import type { CacheBackend, Mapping, Provider, PsiContext } from "@psi/core";
import { defineProvider, errorMessage, PsiError } from "@psi/core";
import { backendName, formatTag, pythonJsonDumps } from "@psi/envelope";

/** The provider name in mappings and configuration. */
export const LOCAL_PROVIDER = "local";

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function describeTag(tag: number): string {
  const name = backendName(tag);
  return name === undefined
    ? `unknown backend ${formatTag(tag)}`
    : `the ${name} backend (${formatTag(tag)})`;
}

/**
 * Seals `plaintext` with the backend's key: base64(tag byte || backend.encrypt(plaintext)).
 * The tag lets a lookup say which backend a blob needs instead of failing authentication.
 */
export async function sealLocalBlob(backend: CacheBackend, plaintext: Uint8Array): Promise<string> {
  const payload = await backend.encrypt(plaintext);
  const blob = Buffer.alloc(1 + payload.byteLength);
  blob[0] = backend.tag;
  blob.set(payload, 1);
  return blob.toString("base64");
}

/** Opens a blob made by {@link sealLocalBlob}; PsiErrors say why it cannot be opened, never the value. */
export async function openLocalBlob(backend: CacheBackend, blob: string): Promise<Uint8Array> {
  if (blob.length < 4 || !BASE64.test(blob)) {
    throw new PsiError("local.bad_blob", "local provider: the mapping's blob is not base64", {
      hint: "re-create the secret with `psi local store NAME`",
    });
  }
  const bytes = Buffer.from(blob, "base64");
  const tag = bytes[0]!;
  if (tag !== backend.tag) {
    throw new PsiError(
      "local.wrong_backend",
      `local provider: the secret was sealed with ${describeTag(tag)}, but the configured cache backend is ${describeTag(backend.tag)}`,
      {
        hint:
          "configure the backend it was sealed with (cache.backend), or store the secret again " +
          "with `psi local store NAME` under the current backend",
      },
    );
  }
  try {
    return await backend.decrypt(bytes.subarray(1));
  } catch (error) {
    throw new PsiError(
      "local.decrypt_failed",
      `local provider: cannot decrypt the secret with the ${backend.name} backend's key (${errorMessage(error)})`,
      {
        cause: error,
        hint: "the key changed since it was sealed (e.g. psi cache init --force); store it again with `psi local store NAME`",
      },
    );
  }
}

/**
 * Seals `plaintext` and returns the mapping bytes `{"provider": "local", "blob": "..."}`
 * (Python `json.dumps` form, like every mapping PSI writes): what Podman stores through
 * the shell driver into `state_dir/<hex id>`.
 */
export async function sealLocal(backend: CacheBackend, plaintext: Uint8Array): Promise<Uint8Array> {
  const blob = await sealLocalBlob(backend, plaintext);
  return Buffer.from(pythonJsonDumps({ provider: LOCAL_PROVIDER, blob }), "utf8");
}

/** Options of {@link createLocalProvider}. */
export interface LocalProviderOptions {
  /** Returns the opened cache backend to seal with; undefined when none is configured. */
  openCacheBackend: () => Promise<CacheBackend | undefined>;
}

/** The local provider over an explicit backend source (the factory below takes it from the context). */
export function createLocalProvider(options: LocalProviderOptions): Provider {
  let backend: CacheBackend | undefined;
  return {
    name: LOCAL_PROVIDER,
    async open() {
      const opened = await options.openCacheBackend();
      if (opened === undefined) {
        throw new PsiError(
          "local.no_backend",
          "local provider: no cache backend is configured to seal with",
          {
            hint: "set cache.backend (keyfile, tpm or hsm) in the configuration and run `psi cache init --backend ...`",
          },
        );
      }
      backend = opened;
    },
    async close() {
      // The backend is shared with the cache; its owner closes it.
      backend = undefined;
    },
    async lookup(mapping: Mapping): Promise<Uint8Array> {
      if (backend === undefined) {
        throw new PsiError("local.not_open", "local provider used before open()");
      }
      const blob = mapping["blob"];
      if (typeof blob !== "string") {
        throw new PsiError(
          "local.bad_blob",
          'local provider: the mapping has no string "blob" field',
          {
            hint: "re-create the secret with `psi local store NAME`",
          },
        );
      }
      return openLocalBlob(backend, blob);
    },
  };
}

/**
 * `providers.local` (SPEC §8.3): secrets sealed on this host with the configured cache
 * backend's key material, stored as `{"provider":"local","blob":...}` mappings.
 */
export const localProvider = defineProvider((context: PsiContext) =>
  createLocalProvider({
    openCacheBackend:
      context.openCacheBackend ??
      (async () => {
        throw new PsiError(
          "local.no_backend",
          "local provider: this program gives providers no cache backend",
          {
            hint: "PsiContext.openCacheBackend must be set by the caller",
          },
        );
      }),
  }),
);
