import { openServeCache } from "@psi/cache";
import {
  cachePath,
  type Env,
  type Logger,
  type Provider,
  type ProviderFactory,
  type PsiContext,
  PsiError,
  parseMapping,
} from "@psi/core";
import { createLookupService } from "./service.js";

// `psi secret store|lookup|delete|list`: Podman's shell driver answered in one process,
// without psi serve (SPEC §5). Every operation refuses a bad secret ID before it reads or
// opens anything.

/**
 * The secret ID Podman's shell driver passes in `SECRET_ID`; throws `secret_id.missing`
 * when it is unset (each operation then checks the ID itself).
 */
export function secretIdFromEnv(env: Env): string {
  const id = env["SECRET_ID"];
  if (id === undefined) {
    throw new PsiError("secret_id.missing", "SECRET_ID is not set", {
      hint: "Podman's shell driver sets it; by hand: SECRET_ID=<hex id> psi secret lookup",
    });
  }
  return id;
}

/** Where the one-shot operations keep mappings, and their logger. */
export interface OneShotOptions {
  /** state_dir: one mapping file per secret ID. */
  stateDir: string;
  logger: Logger;
}

const stateService = (options: OneShotOptions) =>
  createLookupService({ stateDir: options.stateDir, providers: new Map(), logger: options.logger });

/**
 * Providers that open on their first lookup: a one-shot lookup answered from the cache,
 * or by the local provider, never logs in to Infisical or opens an HSM it does not need.
 * `close` closes the ones that opened.
 */
export function lazyProviders(
  context: PsiContext,
  factory: (name: string) => Promise<ProviderFactory>,
): { providers: Map<string, Provider>; close(): Promise<void> } {
  const providers = new Map<string, Provider>();
  const opened: Provider[] = [];
  for (const [name, block] of Object.entries(context.config.providers ?? {})) {
    if (block === undefined) continue;
    let ready: Promise<Provider> | undefined;
    const open = () => {
      ready ??= (async () => {
        const provider = (await factory(name))(context);
        await provider.open();
        opened.push(provider);
        return provider;
      })();
      return ready;
    };
    providers.set(name, {
      name,
      open: async () => {
        await open();
      },
      close: async () => {},
      lookup: async (mapping, options) => (await open()).lookup(mapping, options),
    });
  }
  return {
    providers,
    async close() {
      await Promise.allSettled(opened.map((provider) => provider.close()));
    },
  };
}

/**
 * `psi secret store`: writes the mapping `read` returns to state_dir/<id>, after checking
 * the ID (before reading) and that the mapping is what /store accepts (a JSON object with
 * a string provider); nothing is written otherwise.
 */
export async function storeMappingOnce(
  options: OneShotOptions & { id: string; read: () => Promise<Uint8Array> },
): Promise<void> {
  const service = stateService(options);
  service.checkId(options.id);
  const mapping = await options.read();
  parseMapping(mapping, `the mapping on stdin for secret ${options.id}`);
  await service.store(options.id, mapping);
}

/** Options of {@link lookupOnce}. */
export interface LookupOnceOptions {
  id: string;
  /** The run's context: configuration, paths, logger and the cache backend to open. */
  context: PsiContext;
  /** The cache file; default the context's `cache.path`, else state_dir/cache.enc (`cachePath`). */
  cacheFile?: string;
  /** The factory of a configured provider, loaded on the first lookup that needs it. */
  providerFactory: (name: string) => Promise<ProviderFactory>;
}

/**
 * `psi secret lookup`: the plaintext of one secret, from the cache (opened as serve opens
 * it: failures are warnings) or else its provider, opened only when needed; everything
 * opened is closed before returning.
 */
export async function lookupOnce(options: LookupOnceOptions): Promise<Uint8Array> {
  const { context } = options;
  const logger = context.logger;
  stateService({ stateDir: context.paths.stateDir, logger }).checkId(options.id);
  const lazy = lazyProviders(context, options.providerFactory);
  const { cache, backend } = await openServeCache({
    settings: context.config.cache,
    path: options.cacheFile ?? cachePath(context),
    logger,
    openBackend: async () => context.openCacheBackend?.(),
  });
  try {
    const service = createLookupService({
      stateDir: context.paths.stateDir,
      providers: lazy.providers,
      cache,
      logger,
    });
    return (await service.lookup(options.id)).value;
  } finally {
    await lazy.close();
    await backend?.close();
  }
}

/** `psi secret delete`: removes state_dir/<id> (absent is fine). */
export function removeMappingOnce(options: OneShotOptions & { id: string }): void {
  stateService(options).remove(options.id);
}

/** `psi secret list`: the secret IDs that have a mapping in state_dir. */
export function listMappingIds(options: OneShotOptions): string[] {
  return stateService(options).list();
}
