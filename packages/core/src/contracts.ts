import type { PsiConfig } from "./config-schema.js";
import type { Logger } from "./logger-types.js";
import type { Mapping } from "./mapping.js";
import type { Env, Scope, ScopePaths } from "./paths.js";

/** What every provider and cache backend factory receives: I/O arrives here, not from globals. */
export interface PsiContext {
  config: PsiConfig;
  scope: Scope;
  /** Resolved paths (config overrides applied): stateDir, configDir, socket, ... */
  paths: ScopePaths;
  logger: Logger;
  /** The environment to read the variables SPEC names (CREDENTIALS_DIRECTORY, PSI_*). */
  env: Env;
  /**
   * The configured cache backend, opened (one shared instance per process; do not close
   * it); undefined when no backend is configured. The local provider seals with it.
   */
  openCacheBackend?: () => Promise<CacheBackend | undefined>;
}

/** Per-call options for provider operations. */
export interface ProviderCallOptions {
  signal?: AbortSignal;
}

/** One secret a provider fetched for setup: its name, the mapping to store, its value. */
export interface FetchedSecret {
  key: string;
  mapping: Mapping;
  mappingBytes: Uint8Array;
  value: Uint8Array;
}

/**
 * A secret provider (SPEC §8): `lookup` resolves a mapping to the plaintext. Providers
 * that setup can fetch from also implement `listSource` for one workload source.
 * Errors are PsiErrors whose message names the provider.
 */
export interface Provider {
  readonly name: string;
  open(): Promise<void>;
  close(): Promise<void>;
  lookup(mapping: Mapping, options?: ProviderCallOptions): Promise<Uint8Array>;
  /** Lists the secrets of one workload source (setup); absent for store-only providers. */
  listSource?(
    source: Readonly<Record<string, unknown>>,
    options?: ProviderCallOptions,
  ): Promise<FetchedSecret[]>;
  /** A stable identity of a source so a source shared by workloads is fetched once. */
  sourceKey?(source: Readonly<Record<string, unknown>>): string;
}

/** Builds a provider from the context; registered by name in the CLI's wiring. */
export type ProviderFactory = (context: PsiContext) => Provider;

/** Declares a provider factory (identity; gives the object its type). */
export function defineProvider(factory: ProviderFactory): ProviderFactory {
  return factory;
}

/**
 * A cache backend (SPEC §7): after `open()`, `encrypt`/`decrypt` turn the payload JSON
 * into the bytes after the PSIC header and back. It satisfies @psi/envelope's CacheCipher.
 */
export interface CacheBackend {
  readonly name: "tpm" | "hsm" | "keyfile";
  readonly tag: number;
  open(): Promise<void>;
  encrypt(plaintext: Uint8Array): Promise<Uint8Array>;
  decrypt(payload: Uint8Array): Promise<Uint8Array>;
  close(): Promise<void>;
  /**
   * Re-reads the key from where `open()` got it (a key file, a credential file) and
   * resolves true when it changed; backends whose key cannot change under them omit it.
   */
  reloadKey?(): Promise<boolean>;
}

/** Builds a cache backend from the context. */
export type CacheBackendFactory = (context: PsiContext) => CacheBackend;

/** Declares a cache backend factory (identity; gives the object its type). */
export function defineCacheBackend(factory: CacheBackendFactory): CacheBackendFactory {
  return factory;
}
