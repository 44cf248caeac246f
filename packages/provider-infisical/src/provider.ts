import {
  defineProvider,
  type FetchedSecret,
  infisicalMappingBytes,
  type Mapping,
  type ProviderCallOptions,
  type ProviderFactory,
} from "@psi/core";
import * as v from "valibot";
import { createInfisicalClient, type InfisicalClient, normalizeSecretPath } from "./client.js";
import { infisicalError } from "./errors.js";
import type { FetchFn } from "./http.js";

const MappingSchema = v.object({
  provider: v.literal("infisical"),
  project: v.pipe(v.string(), v.nonEmpty()),
  path: v.pipe(v.string(), v.nonEmpty()),
  key: v.pipe(v.string(), v.nonEmpty()),
});

const SourceSchema = v.object({
  project: v.pipe(v.string(), v.nonEmpty()),
  path: v.optional(v.pipe(v.string(), v.nonEmpty()), "/"),
  recursive: v.optional(v.boolean(), false),
});

/** A workload source (SPEC §2 `secrets:` entry) after defaults. */
export type InfisicalSource = v.InferOutput<typeof SourceSchema>;

/** Parses a workload source; throws `provider.bad_source` on anything else. */
export function parseInfisicalSource(source: Readonly<Record<string, unknown>>): InfisicalSource {
  const parsed = v.safeParse(SourceSchema, source);
  if (!parsed.success) {
    throw infisicalError(
      "provider.bad_mapping",
      "an Infisical source needs project (string), path (string) and recursive (boolean)",
      {
        hint: "workloads.<name>.secrets entries look like { project: myproject, path: /myapp, recursive: false }",
      },
    );
  }
  return parsed.output;
}

/** Extra seams for tests and embedders (the context carries everything else). */
export interface InfisicalProviderOptions {
  fetch?: FetchFn;
  now?: () => number;
}

/**
 * The `infisical` provider (SPEC §8.1): `lookup` reads one secret live (lookup_timeout),
 * `listSource` lists a workload source for setup (setup_timeout) with mappings named by
 * each secret's actual path, `sourceKey` identifies sources shared by workloads.
 */
export function createInfisicalProvider(options: InfisicalProviderOptions = {}): ProviderFactory {
  return defineProvider((context) => {
    let client: InfisicalClient | undefined;

    function open(): InfisicalClient {
      if (client) return client;
      const config = context.config.providers.infisical;
      if (!config) {
        throw infisicalError(
          "provider.not_configured",
          "infisical: providers.infisical is not configured",
          {
            hint: "add a providers.infisical block to the configuration",
          },
        );
      }
      client = createInfisicalClient({
        config,
        stateDir: context.paths.stateDir,
        env: context.env,
        logger: context.logger.child({ provider: "infisical" }),
        caCert: context.config.ca_cert,
        ...(options.fetch ? { fetch: options.fetch } : {}),
        ...(options.now ? { now: options.now } : {}),
      });
      return client;
    }

    return {
      name: "infisical",
      async open() {
        open();
      },
      async close() {
        client?.reset();
        client = undefined;
      },
      async lookup(mapping: Mapping, call: ProviderCallOptions = {}) {
        const parsed = v.safeParse(MappingSchema, mapping);
        if (!parsed.success) {
          throw infisicalError(
            "provider.bad_mapping",
            "infisical: the mapping needs string project, path and key fields",
            {
              hint: "re-create the Podman secret with psi setup",
            },
          );
        }
        const { project, path, key } = parsed.output;
        const value = await open().getSecret(
          { project, path, key },
          { signal: call.signal, purpose: "lookup" },
        );
        return new Uint8Array(Buffer.from(value, "utf8"));
      },
      async listSource(source, call: ProviderCallOptions = {}): Promise<FetchedSecret[]> {
        const { project, path, recursive } = parseInfisicalSource(source);
        const listed = await open().listSecrets(
          { project, path, recursive },
          { signal: call.signal, purpose: "setup" },
        );
        return listed.map((secret) => {
          const mapping = { provider: "infisical", project, path: secret.path, key: secret.key };
          return {
            key: secret.key,
            mapping,
            mappingBytes: infisicalMappingBytes(mapping),
            value: new Uint8Array(Buffer.from(secret.value, "utf8")),
          };
        });
      },
      sourceKey(source) {
        const { project, path, recursive } = parseInfisicalSource(source);
        const entry = context.config.providers.infisical?.projects[project];
        return JSON.stringify([
          "infisical",
          project,
          entry?.id ?? null,
          entry?.environment ?? null,
          normalizeSecretPath(path),
          recursive,
        ]);
      },
    };
  });
}

/** The provider factory with default seams: register it under the name "infisical". */
export const infisicalProvider: ProviderFactory = createInfisicalProvider();
