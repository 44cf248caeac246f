import * as v from "valibot";

const text = (what: string) => v.pipe(v.string(`${what} must be a string`), v.nonEmpty(`${what} must not be empty`));
const duration = (what: string) =>
  v.pipe(
    v.union([v.string(), v.number()], `${what} must be a duration such as 1h, 30min or 300`),
    v.transform((value) => String(value)),
    v.regex(
      /^\s*(\d+(\.\d+)?\s*(us|ms|s|sec|second|seconds|m|min|minute|minutes|h|hr|hour|hours|d|day|days|w|week|weeks|M|month|months|y|year|years)?\s*)+$/,
      `${what} must be a duration such as 1h, 30min or 300`,
    ),
  );

/** Infisical auth methods (SPEC §2). */
export const AuthSchema = v.variant(
  "method",
  [
    v.object({
      method: v.literal("universal-auth"),
      client_id: text("client_id"),
      client_secret: text("client_secret"),
    }),
    v.object({ method: v.literal("aws-iam"), identity_id: text("identity_id") }),
    v.object({ method: v.literal("gcp"), identity_id: text("identity_id") }),
    v.object({ method: v.literal("azure"), identity_id: text("identity_id") }),
  ],
  'auth.method must be one of "universal-auth", "aws-iam", "gcp", "azure"',
);

const ProjectSchema = v.object({
  id: text("id"),
  environment: v.optional(text("environment"), "prod"),
  auth: v.optional(AuthSchema),
});

const AltNameSchema = v.object({
  type: v.picklist(
    ["dns_name", "ip_address", "email", "uri"],
    'type must be one of "dns_name", "ip_address", "email", "uri"',
  ),
  value: text("value"),
});

const CertificateSchema = v.object({
  project: text("project"),
  profile_id: text("profile_id"),
  common_name: text("common_name"),
  alt_names: v.optional(v.array(AltNameSchema), []),
  ttl: v.optional(duration("ttl"), "90d"),
  key_algorithm: v.optional(text("key_algorithm")),
  renew_before: v.optional(duration("renew_before"), "30d"),
  output: v.object({
    cert: text("cert"),
    key: text("key"),
    chain: text("chain"),
    ca: v.optional(text("ca")),
    mode: v.optional(v.pipe(v.string(), v.regex(/^0?[0-7]{3}$/, "mode must be octal such as 0640")), "0640"),
  }),
  hooks: v.optional(v.array(text("hook")), []),
});

/** Test and advanced settings: where the cloud identity endpoints live. */
const EndpointsSchema = v.object({
  aws_sts: v.optional(text("aws_sts"), "https://sts.amazonaws.com/"),
  aws_metadata: v.optional(text("aws_metadata"), "http://169.254.169.254"),
  aws_ecs_metadata: v.optional(text("aws_ecs_metadata"), "http://169.254.170.2"),
  gcp_metadata: v.optional(text("gcp_metadata"), "http://metadata.google.internal"),
  azure_imds: v.optional(text("azure_imds"), "http://169.254.169.254"),
});

/** `providers.infisical` (SPEC §2, §8.1). */
export const InfisicalSchema = v.object({
  api_url: v.optional(text("api_url"), "https://app.infisical.com"),
  verify_ssl: v.optional(v.boolean("verify_ssl must be true or false"), true),
  ca_cert: v.optional(text("ca_cert")),
  token: v.optional(v.object({ ttl: v.optional(v.pipe(v.number("token.ttl must be a number of seconds"), v.minValue(1)), 300) }), {}),
  auth: v.optional(AuthSchema),
  projects: v.optional(v.record(v.string(), ProjectSchema), {}),
  tls: v.optional(v.object({ certificates: v.optional(v.record(v.string(), CertificateSchema), {}) }), {}),
  endpoints: v.optional(EndpointsSchema, {}),
  /** Seconds to wait before each retry of a failed setup request (SPEC §9). */
  retry_delays: v.optional(v.array(v.pipe(v.number(), v.minValue(0))), [5, 10, 20, 40, 60]),
  /** Per-request timeouts in seconds. */
  setup_timeout: v.optional(v.pipe(v.number(), v.minValue(0.001)), 30),
  lookup_timeout: v.optional(v.pipe(v.number(), v.minValue(0.001)), 5),
});

/** `providers.nitrokeyhsm` with the reference's defaults (SPEC §2). */
export const NitrokeyHsmSchema = v.object({
  pkcs11_module: v.optional(text("pkcs11_module"), "/usr/lib64/pkcs11/opensc-pkcs11.so"),
  slot: v.optional(v.pipe(v.number("slot must be a number"), v.integer(), v.minValue(0)), 0),
  key_label: v.optional(text("key_label"), "podman-secrets"),
  key_id: v.optional(
    v.pipe(v.union([v.string(), v.number()]), v.transform(String), v.regex(/^([0-9a-fA-F]{2})+$/, "key_id must be hex such as \"02\"")),
    "02",
  ),
  pin: v.optional(v.nullable(v.pipe(v.union([v.string(), v.number()]), v.transform(String))), null),
  public_key_cache: v.optional(v.nullable(text("public_key_cache")), null),
  pcscd_volume: v.optional(text("pcscd_volume"), "pcscd-socket"),
  oaep_hash: v.optional(v.picklist(["sha256", "sha1"], 'oaep_hash must be "sha256" or "sha1"'), "sha256"),
  init_params: v.optional(v.nullable(v.string()), null),
});

/** `providers.local` (SPEC §8.3): no settings yet. */
export const LocalSchema = v.object({});

/** `cache` (SPEC §2, §6.5, §7). */
export const CacheSchema = v.object({
  enabled: v.optional(v.boolean("cache.enabled must be true or false"), true),
  backend: v.optional(v.picklist(["tpm", "hsm", "keyfile"], 'backend must be one of "tpm", "hsm", "keyfile"')),
  path: v.optional(text("path")),
  key_file: v.optional(text("key_file")),
  refresh_interval: v.optional(duration("refresh_interval"), "1h"),
  refresh_randomized_delay: v.optional(duration("refresh_randomized_delay"), "5m"),
});

/** One Infisical source of a workload. */
export const SourceSchema = v.object({
  project: text("project"),
  path: v.optional(text("path"), "/"),
  recursive: v.optional(v.boolean("recursive must be true or false"), false),
});

/** `workloads.<name>` (SPEC §2). */
export const WorkloadSchema = v.object({
  provider: v.optional(text("provider"), "infisical"),
  unit: v.optional(text("unit")),
  depends_on: v.optional(v.array(text("depends_on entry")), []),
  secrets: v.optional(v.array(SourceSchema), []),
});

/** Top-level keys; unknown ones are errors here (as in the reference). */
export const ConfigSchema = v.strictObject(
  {
    scope: v.optional(v.picklist(["system", "user"], 'scope must be "system" or "user"')),
    state_dir: v.optional(text("state_dir")),
    systemd_dir: v.optional(text("systemd_dir")),
    ca_cert: v.optional(text("ca_cert")),
    socket_token: v.optional(v.pipe(v.union([v.string(), v.number()]), v.transform(String))),
    providers: v.optional(
      v.object({
        infisical: v.optional(InfisicalSchema),
        nitrokeyhsm: v.optional(NitrokeyHsmSchema),
        local: v.optional(v.pipe(v.nullable(LocalSchema), v.transform((x) => x ?? {}))),
      }),
      {},
    ),
    workloads: v.optional(v.record(v.string(), WorkloadSchema), {}),
    cache: v.optional(CacheSchema),
  },
  "the configuration must be a YAML mapping of the top-level keys",
);

/** The validated configuration: the schema is the type. */
export type PsiConfig = v.InferOutput<typeof ConfigSchema>;
export type InfisicalConfig = v.InferOutput<typeof InfisicalSchema>;
export type NitrokeyHsmConfig = v.InferOutput<typeof NitrokeyHsmSchema>;
export type CacheConfig = v.InferOutput<typeof CacheSchema>;
export type WorkloadConfig = v.InferOutput<typeof WorkloadSchema>;
export type SourceConfig = v.InferOutput<typeof SourceSchema>;
export type AuthConfig = v.InferOutput<typeof AuthSchema>;
export type CertificateConfig = v.InferOutput<typeof CertificateSchema>;
/** Names of the top-level scalar keys that `PSI_*` variables override. */
export const ENV_OVERRIDABLE_KEYS = ["scope", "state_dir", "systemd_dir", "ca_cert", "socket_token"] as const;
