import { type Mapping, type Provider, type PsiContext, PsiError } from "@psi/core";
import type {
  ImportRun,
  InfisicalImportTarget,
  PodmanImportOptions,
} from "@psi/provider-infisical";

// `psi infisical import podman-secret|quadlet`: the imports that read Podman's secrets
// (the file driver's data, PSI's shell-driver mappings resolved through their provider).
// @psi/provider-infisical loads on first use: `psi status` imports @psi/ops too.

const infisical = () => import("@psi/provider-infisical");

/** How the Podman-reading imports reach Podman and open the providers mappings name. */
export interface PodmanSourceOptions {
  /** `--podman-socket`, when given (else PSI_PODMAN_SOCKET, else the scope's socket). */
  podmanSocket?: string | undefined;
  /** Opens the named provider (a map without it when it is not configured or failed). */
  openProviders: (only: string) => Promise<Map<string, Provider>>;
}

/**
 * Podman's secret listing and a lookup that opens a mapping's provider on first use, for
 * the duration of `work`; the opened providers are closed afterwards.
 */
async function withPodmanSecrets<T>(
  context: PsiContext,
  options: PodmanSourceOptions,
  work: (source: PodmanImportOptions) => Promise<T>,
): Promise<T> {
  const { createPodmanClient, podmanSocketPath } = await import("@psi/podman");
  const podman = createPodmanClient({
    socketPath: podmanSocketPath({
      flag: options.podmanSocket,
      env: context.env,
      defaultPath: context.paths.podmanSocket,
    }),
    scope: context.scope,
  });
  const listed = await podman.listSecrets();
  const providers = new Map<string, Map<string, Provider>>();
  const lookup = async (mapping: Mapping): Promise<Uint8Array> => {
    let opened = providers.get(mapping.provider);
    if (!opened) {
      opened = await options.openProviders(mapping.provider);
      providers.set(mapping.provider, opened);
    }
    const provider = opened.get(mapping.provider);
    if (!provider) {
      throw new PsiError(
        "provider.unavailable",
        `provider ${mapping.provider} is not configured or failed to open`,
        { hint: `configure providers.${mapping.provider} so psi can read this secret` },
      );
    }
    return provider.lookup(mapping);
  };
  try {
    return await work({ listed, stateDir: context.paths.stateDir, lookup });
  } finally {
    for (const opened of providers.values()) {
      await Promise.all([...opened.values()].map((provider) => provider.close().catch(() => {})));
    }
  }
}

/** Options of {@link importPodmanSecrets}. */
export interface PodmanSecretImportOptions extends InfisicalImportTarget, PodmanSourceOptions {
  /** The Podman secrets to import under their names. */
  names: readonly string[];
  /** Every Podman secret instead of `names`. */
  all?: boolean | undefined;
}

/**
 * `psi infisical import podman-secret`: Podman secrets imported under their names; a
 * missing or unreadable one is a failed key in the report, not a throw.
 */
export async function importPodmanSecrets(
  context: PsiContext,
  options: PodmanSecretImportOptions,
): Promise<ImportRun> {
  const { infisicalImport, infisicalSettings, podmanImportItems } = await infisical();
  infisicalSettings(context);
  return withPodmanSecrets(context, options, async (source) => {
    const wanted = options.all ? [...new Set(source.listed.map((s) => s.name))] : options.names;
    const items = await podmanImportItems(
      wanted.map((name) => ({
        name,
        key: name,
        source: `podman secret ${name}`,
        missingSource: "podman",
      })),
      source,
    );
    return infisicalImport(context, { ...options, items });
  });
}

/** Options of {@link importQuadlets}. */
export interface QuadletImportOptions extends InfisicalImportTarget, PodmanSourceOptions {
  files: readonly string[];
  /** Also import `Secret=` references, read through Podman. */
  resolveSecrets?: boolean | undefined;
}

/**
 * `psi infisical import quadlet`: the `Environment=` lines of quadlet files and, with
 * `resolveSecrets`, their `Secret=` references read through Podman.
 */
export async function importQuadlets(
  context: PsiContext,
  options: QuadletImportOptions,
): Promise<ImportRun> {
  const { infisicalImport, infisicalSettings, podmanImportItems, readQuadletImport } =
    await infisical();
  const { items, warnings, references } = await readQuadletImport(context, options.files, {
    resolveSecrets: options.resolveSecrets,
  });
  if (references.length > 0 && options.resolveSecrets) {
    infisicalSettings(context);
    const resolved = await withPodmanSecrets(context, options, (source) =>
      podmanImportItems(references, source),
    );
    items.push(...resolved);
  }
  return infisicalImport(context, { ...options, items, warnings });
}
