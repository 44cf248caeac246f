import * as v from "valibot";
import { isDuration } from "./duration.js";

// Messages say what was expected; the loader adds where (file, YAML path, line:column)
// and what it got, so the schema stays the single source of types, defaults and wording.

/** A key that may be absent or empty (`key:` is null in YAML): both mean "not set", as in the reference. */
function maybe<TSchema extends v.GenericSchema>(schema: TSchema) {
  return v.optional(
    v.pipe(
      v.nullable(schema),
      v.transform((value): NonNullable<v.InferOutput<TSchema>> | undefined => value ?? undefined),
    ),
  );
}

const NON_EMPTY = "expected a non-empty string";
const text = (expected = NON_EMPTY) => v.pipe(v.string(expected), v.nonEmpty(expected));
const bool = () => v.boolean("expected true or false");
const DURATION = "expected a duration such as 1h, 30min, 90d or a number of seconds";
const duration = () =>
  v.pipe(
    v.union([v.string(), v.number()], DURATION),
    v.transform((value) => String(value)),
    v.check(isDuration, DURATION),
  );
const seconds = (min: number) =>
  v.pipe(
    v.number(`expected a number of seconds of at least ${min}`),
    v.finite(`expected a number of seconds of at least ${min}`),
    v.minValue(min, `expected a number of seconds of at least ${min}`),
  );
const stringOrNumber = (expected: string) =>
  v.pipe(
    v.union([v.string(), v.number()], expected),
    v.transform((value) => String(value)),
  );

const UNIT_NAME = "expected a service unit name such as myapp.service or worker@.service";

/**
 * Attaches the prose docs/configuration.md shows for a key (the generator reads it from
 * the schema, so a new key appears there after `pnpm docs:config`).
 */
export function about<TSchema extends v.GenericSchema>(schema: TSchema, text: string) {
  return v.pipe(schema, v.description(text));
}

const AUTH_METHODS = '"universal-auth", "aws-iam", "gcp", "azure"';

/** Infisical auth methods (SPEC §2): the `method` key picks the required fields. */
export const AuthSchema = v.variant(
  "method",
  [
    v.object({
      method: about(
        v.literal("universal-auth"),
        "Machine identity with a client ID and secret (Universal Auth); works from any host.",
      ),
      client_id: about(text(), "Universal Auth client ID of the machine identity."),
      client_secret: about(
        text(),
        "Universal Auth client secret. The config file holds it, so keep the file 0600.",
      ),
    }),
    v.object({
      method: about(
        v.literal("aws-iam"),
        "AWS IAM auth: a signed STS GetCallerIdentity with the host's AWS credentials (env, shared files, ECS/EC2 metadata).",
      ),
      identity_id: about(text(), "ID of the Infisical machine identity to log in as."),
    }),
    v.object({
      method: about(
        v.literal("gcp"),
        "GCP ID-token auth: an identity token from the GCE metadata server.",
      ),
      identity_id: about(text(), "ID of the Infisical machine identity to log in as."),
    }),
    v.object({
      method: about(
        v.literal("azure"),
        "Azure managed-identity auth: a token from the instance metadata service (IMDS).",
      ),
      identity_id: about(text(), "ID of the Infisical machine identity to log in as."),
    }),
  ],
  // The same schema reports a non-mapping (no path yet) and an unknown method (path ends at `method`).
  (issue) =>
    issue.path === undefined
      ? `expected a mapping with a method (one of ${AUTH_METHODS})`
      : `expected one of ${AUTH_METHODS}`,
);

/** `providers.infisical.projects.<name>`. */
export const ProjectSchema = v.object({
  id: about(text(), "The Infisical project ID (a UUID, shown in the project settings)."),
  environment: about(v.nullish(text(), "prod"), "Environment slug to read secrets from."),
  auth: about(
    maybe(AuthSchema),
    "Auth for this project only; overrides `providers.infisical.auth`. Same fields as that key.",
  ),
});

const AltNameSchema = v.object({
  type: about(
    v.picklist(
      ["dns_name", "ip_address", "email", "uri"],
      'expected one of "dns_name", "ip_address", "email", "uri"',
    ),
    "Kind of subject alternative name.",
  ),
  value: about(text(), "The name, address, e-mail or URI."),
});

const MODE = 'expected an octal file mode such as "0640"';
/** A file mode written `"0640"` (or an unquoted YAML 1.1 octal `0640`); always a 4-digit octal string. */
const fileMode = () =>
  v.pipe(
    v.union(
      [
        v.pipe(v.string(MODE), v.regex(/^0?[0-7]{3}$/, MODE)),
        v.pipe(v.number(MODE), v.integer(MODE), v.minValue(0, MODE), v.maxValue(0o777, MODE)),
      ],
      MODE,
    ),
    v.transform((mode) =>
      typeof mode === "number" ? `0${mode.toString(8).padStart(3, "0")}` : mode.padStart(4, "0"),
    ),
  );

/** `providers.infisical.tls.certificates.<name>` (SPEC §12). */
export const CertificateSchema = v.object({
  project: about(
    text(),
    "Name of a project under `providers.infisical.projects` (its auth is used).",
  ),
  profile_id: about(text(), "ID of the Infisical certificate profile that issues the certificate."),
  common_name: about(text(), "Subject common name."),
  alt_names: about(
    v.nullish(v.array(AltNameSchema, "expected a list of {type, value}"), []),
    "Subject alternative names.",
  ),
  ttl: about(v.nullish(duration(), "90d"), "Requested lifetime of the certificate."),
  key_algorithm: about(
    maybe(text()),
    "Key algorithm passed to Infisical (for example `RSA_2048`, `EC_prime256v1`); unset: the profile's default.",
  ),
  renew_before: about(
    v.nullish(duration(), "30d"),
    "`psi infisical tls renew` renews when the certificate expires within this time.",
  ),
  output: about(
    v.object(
      {
        cert: about(text(), "Path of the certificate file (PEM)."),
        key: about(text(), "Path of the private key file (PEM)."),
        chain: about(text(), "Path of the chain file (PEM)."),
        ca: about(maybe(text()), "Path of the issuing CA certificate; not written when unset."),
        mode: about(v.nullish(fileMode(), "0640"), "File mode of the written files, quoted octal."),
      },
      "expected a mapping with cert, key and chain paths",
    ),
    "Where the certificate files are written (atomically).",
  ),
  hooks: about(
    v.nullish(v.array(text(), "expected a list of commands"), []),
    "Commands run after new files are written (split into arguments, run without a shell), e.g. `systemctl reload nginx`.",
  ),
});

/** Test and advanced settings: where the cloud identity endpoints live. */
const EndpointsSchema = v.object({
  aws_sts: about(
    v.nullish(text(), "https://sts.amazonaws.com/"),
    "STS endpoint signed for `aws-iam` auth.",
  ),
  aws_metadata: about(
    v.nullish(text(), "http://169.254.169.254"),
    "EC2 instance metadata service (AWS credentials).",
  ),
  aws_ecs_metadata: about(
    v.nullish(text(), "http://169.254.170.2"),
    "ECS task metadata endpoint (AWS credentials in containers).",
  ),
  gcp_metadata: about(
    v.nullish(text(), "http://metadata.google.internal"),
    "GCE metadata server (`gcp` auth).",
  ),
  azure_imds: about(
    v.nullish(text(), "http://169.254.169.254"),
    "Azure instance metadata service (`azure` auth).",
  ),
});

const MAPPING = "expected a mapping";

/** `providers.infisical` (SPEC §2, §8.1). */
export const InfisicalSchema = v.object(
  {
    api_url: about(
      v.nullish(text(), "https://app.infisical.com"),
      "Base URL of the Infisical server (Infisical Cloud or self-hosted).",
    ),
    verify_ssl: about(
      v.nullish(bool(), true),
      "Verify the server's TLS certificate. `false` is for tests only: anyone on the path can then read every secret.",
    ),
    ca_cert: about(
      maybe(text()),
      "PEM file of an extra CA to trust for this server (a private PKI); the top-level `ca_cert` also applies.",
    ),
    token: about(
      v.nullish(
        v.object(
          {
            ttl: about(
              v.nullish(seconds(1), 300),
              "Longest time in seconds a login token is reused (cached in `state_dir/.token.*.json`); the token's own expiry wins when shorter.",
            ),
          },
          MAPPING,
        ),
        {},
      ),
      "Caching of login tokens.",
    ),
    auth: about(
      maybe(AuthSchema),
      "Default auth for every project that has none of its own. Every project needs auth from here or its own `auth`.",
    ),
    projects: about(
      v.nullish(v.record(v.string(), ProjectSchema, MAPPING), {}),
      "Projects by the name workloads use in `secrets[].project`.",
    ),
    tls: about(
      v.nullish(
        v.object(
          {
            certificates: about(
              v.nullish(v.record(v.string(), CertificateSchema, MAPPING), {}),
              "Certificates issued and renewed by `psi infisical tls`, by name.",
            ),
          },
          MAPPING,
        ),
        {},
      ),
      "TLS certificates from Infisical's certificate manager.",
    ),
    endpoints: about(
      v.nullish(v.object(EndpointsSchema.entries, MAPPING), {}),
      "Cloud identity endpoints used by `aws-iam`, `gcp` and `azure` auth; change them only for tests or unusual networks.",
    ),
    retry_delays: about(
      v.nullish(v.array(seconds(0), "expected a list of seconds"), [5, 10, 20, 40, 60]),
      "Seconds to wait before each retry of a setup request that failed to connect or got 404/502/503; one retry per element.",
    ),
    setup_timeout: about(
      v.nullish(seconds(0.001), 30),
      "Timeout in seconds of each request made by setup and the Infisical commands.",
    ),
    lookup_timeout: about(
      v.nullish(seconds(0.001), 5),
      "Timeout in seconds of a live lookup (a cache miss), so a hung server cannot stall container starts for long.",
    ),
  },
  MAPPING,
);

const KEY_ID = 'expected an even number of hex digits in quotes, such as "02"';

/** `providers.nitrokeyhsm` with the reference's defaults (SPEC §2, §8.2). */
export const NitrokeyHsmSchema = v.object(
  {
    pkcs11_module: about(
      v.nullish(text(), "/usr/lib64/pkcs11/opensc-pkcs11.so"),
      "Path of the PKCS#11 module (OpenSC for a Nitrokey HSM 2).",
    ),
    slot: about(
      v.nullish(
        v.pipe(
          v.number("expected a slot index (0, 1, ...)"),
          v.integer("expected a slot index (0, 1, ...)"),
          v.minValue(0, "expected a slot index (0, 1, ...)"),
        ),
        0,
      ),
      "Index into the list of slots that have a token present (not the PKCS#11 slot ID).",
    ),
    key_label: about(
      v.nullish(text(), "podman-secrets"),
      "Label of the RSA key pair; used when no key has `key_id`.",
    ),
    key_id: about(
      v.nullish(v.pipe(stringOrNumber(KEY_ID), v.regex(/^(?:[0-9a-fA-F]{2})+$/, KEY_ID)), "02"),
      "CKA_ID of the RSA key pair in hex; tried first.",
    ),
    pin: about(
      v.nullish(stringOrNumber("expected a PIN string"), null),
      "User PIN. Prefer the `hsm-pin` systemd credential; order: `$CREDENTIALS_DIRECTORY/hsm-pin`, this key, `PSI_NITROKEYHSM_PIN`.",
    ),
    public_key_cache: about(
      v.nullish(text(), null),
      "Where the token's public key is kept (DER), so encrypting needs no token.",
    ),
    pcscd_volume: about(
      v.nullish(text(), "pcscd-socket"),
      "Podman volume that shares the host's pcscd socket with the PSI containers (container mode).",
    ),
    oaep_hash: about(
      v.nullish(v.picklist(["sha256", "sha1"], 'expected "sha256" or "sha1"'), "sha256"),
      "RSA-OAEP hash. `sha1` only for tokens that cannot do SHA-256 (SoftHSM 2.6); never change it once blobs exist.",
    ),
    init_params: about(
      v.nullish(v.string("expected a string"), null),
      "String passed to C_Initialize (NSS softokn needs its configdir here); unset for OpenSC.",
    ),
  },
  MAPPING,
);

/** `providers.local` (SPEC §8.3): no settings yet. */
export const LocalSchema = v.object({}, MAPPING);

/** `cache` (SPEC §2, §6.5, §7). */
export const CacheSchema = v.object(
  {
    enabled: about(
      v.nullish(bool(), true),
      "Use the encrypted cache. `false`: every lookup asks the provider.",
    ),
    backend: about(
      maybe(v.picklist(["tpm", "hsm", "keyfile"], 'expected one of "tpm", "hsm", "keyfile"')),
      "Who holds the cache key (see [secret-cache.md](secret-cache.md)). Unset: serve warns and runs without a cache.",
    ),
    path: about(maybe(text()), "The encrypted cache file."),
    key_file: about(
      maybe(text()),
      "Key of the `keyfile` backend (32 bytes, 0600), created by `psi cache init --backend keyfile`.",
    ),
    refresh_interval: about(
      v.nullish(duration(), "1h"),
      "How often the refresh timer re-runs setup; `psi status` warns when the cache is older than twice this.",
    ),
    refresh_randomized_delay: about(
      v.nullish(duration(), "5m"),
      "Random delay added to each refresh (systemd `RandomizedDelaySec=`), so a fleet does not refresh at once.",
    ),
  },
  MAPPING,
);

/** One Infisical source of a workload. */
export const SourceSchema = v.object(
  {
    project: about(text(), "Name of a project under `providers.infisical.projects`."),
    path: about(v.nullish(text(), "/"), "Folder in the project."),
    recursive: about(
      v.nullish(bool(), false),
      "Include secrets of sub-folders (a key found twice: the later one wins).",
    ),
  },
  "expected a mapping such as {project: myproject, path: /myapp}",
);

/** `workloads.<name>` (SPEC §2). */
export const WorkloadSchema = v.object(
  {
    provider: about(
      v.nullish(text(), "infisical"),
      "Provider of the workload's secrets; must be configured under `providers`.",
    ),
    unit: about(
      maybe(text()),
      "The workload's unit (for example `myapp.container`); informational.",
    ),
    depends_on: about(
      v.nullish(v.array(text(), "expected a list of unit names"), []),
      "Units the container starts after (`After=` and `Wants=` in its drop-in), e.g. `psi-infisical-setup.service`.",
    ),
    secrets: about(
      v.nullish(v.array(SourceSchema, "expected a list of sources"), []),
      "Infisical sources, merged in order (a later source wins on a key clash).",
    ),
    on_change: about(
      v.nullish(v.picklist(["none", "restart"], 'expected "none" or "restart"'), "none"),
      "What `psi setup` does when a value of this workload changed since the previous `cache.enc`: `none` (nothing, as the reference) or `restart` (restart the workload's unit so its containers get the new value; see the operations guide).",
    ),
    restart_unit: about(
      maybe(v.pipe(text(UNIT_NAME), v.regex(/^[A-Za-z0-9:_.\\@-]+\.service$/, UNIT_NAME))),
      "With `on_change: restart`: the unit to restart when it is not the service quadlet derives from `unit` (`myapp.container` → `myapp.service`); a template such as `worker@.service` restarts its running instances one at a time.",
    ),
    allow_empty: about(
      v.nullish(bool(), false),
      "A source that lists no secrets while the workload still has some keeps them (and setup exits 1) unless this is true, which confirms that emptying the workload is intended (as `psi setup --allow-empty` does for one run).",
    ),
  },
  MAPPING,
);

/**
 * Workload names become Podman secret names (`<name>--<KEY>`) and drop-in directories
 * (`<name>.container.d`), so they must be plain file names; a trailing "@" marks a template.
 */
export const WORKLOAD_NAME = /^[A-Za-z0-9][A-Za-z0-9_.:-]*@?$/;
const WorkloadNameSchema = v.pipe(
  v.string(),
  v.regex(
    WORKLOAD_NAME,
    'expected a workload name of letters, digits, "_", ".", ":", "-", optionally ending in "@"',
  ),
);

/** The top-level keys (SPEC §2); unknown ones are errors (as in the reference). */
export const ConfigSchema = v.strictObject(
  {
    scope: about(
      maybe(v.picklist(["system", "user"], 'expected "system" or "user"')),
      "Which default paths apply: `system` (root) or `user` (rootless Podman).",
    ),
    state_dir: about(
      maybe(text()),
      "Mapping files (one per Podman secret), the cache, token caches, the HSM public key.",
    ),
    systemd_dir: about(
      maybe(text()),
      "Where quadlets and workload drop-ins (`<name>.container.d/50-secrets.conf`) are written.",
    ),
    ca_cert: about(
      maybe(text()),
      "PEM CA bundle trusted by PSI's HTTP clients and mounted into the PSI containers.",
    ),
    socket_token: about(
      maybe(stringOrNumber("expected a token string")),
      "Bearer token the lookup socket requires (8+ of `A-Za-z0-9._~+/=-`). Prefer the `psi-socket-token` credential; order: `$CREDENTIALS_DIRECTORY/psi-socket-token`, this key, `PSI_SOCKET_TOKEN`.",
    ),
    providers: about(
      v.nullish(
        v.object(
          {
            // An empty block (`local:`) configures the provider with its defaults.
            infisical: about(
              v.optional(v.nullable(InfisicalSchema, {})),
              "Secrets fetched from Infisical by setup ([providers/infisical.md](providers/infisical.md)).",
            ),
            nitrokeyhsm: about(
              v.optional(v.nullable(NitrokeyHsmSchema, {})),
              "Secrets encrypted to an RSA key on a PKCS#11 token ([providers/nitrokeyhsm.md](providers/nitrokeyhsm.md)).",
            ),
            local: about(
              v.optional(v.nullable(LocalSchema, {})),
              "Secrets sealed on this host with the cache key ([providers/local.md](providers/local.md)).",
            ),
          },
          MAPPING,
        ),
        {},
      ),
      "Configured providers; a provider is configured when its key is present (`local: {}` is enough).",
    ),
    workloads: about(
      v.nullish(v.record(WorkloadNameSchema, WorkloadSchema, MAPPING), {}),
      "Workloads by name; the name prefixes its Podman secrets (`<name>--<KEY>`), a trailing `@` marks a template unit.",
    ),
    cache: about(maybe(CacheSchema), "The encrypted cache ([secret-cache.md](secret-cache.md))."),
  },
  "expected a mapping of the top-level keys",
);

/** The validated configuration: the schema is the type. */
export type PsiConfig = v.InferOutput<typeof ConfigSchema>;
export type InfisicalConfig = v.InferOutput<typeof InfisicalSchema>;
export type NitrokeyHsmConfig = v.InferOutput<typeof NitrokeyHsmSchema>;
export type CacheConfig = v.InferOutput<typeof CacheSchema>;
export type WorkloadConfig = v.InferOutput<typeof WorkloadSchema>;
export type SourceConfig = v.InferOutput<typeof SourceSchema>;
export type AuthConfig = v.InferOutput<typeof AuthSchema>;
export type ProjectConfig = v.InferOutput<typeof ProjectSchema>;
export type CertificateConfig = v.InferOutput<typeof CertificateSchema>;
/** Names of the top-level scalar keys that `PSI_*` variables override. */
export const ENV_OVERRIDABLE_KEYS = [
  "scope",
  "state_dir",
  "systemd_dir",
  "ca_cert",
  "socket_token",
] as const;
