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

const AUTH_METHODS = '"universal-auth", "aws-iam", "gcp", "azure"';

/** Infisical auth methods (SPEC §2): the `method` key picks the required fields. */
export const AuthSchema = v.variant(
  "method",
  [
    v.object({
      method: v.literal("universal-auth"),
      client_id: text(),
      client_secret: text(),
    }),
    v.object({ method: v.literal("aws-iam"), identity_id: text() }),
    v.object({ method: v.literal("gcp"), identity_id: text() }),
    v.object({ method: v.literal("azure"), identity_id: text() }),
  ],
  // The same schema reports a non-mapping (no path yet) and an unknown method (path ends at `method`).
  (issue) =>
    issue.path === undefined
      ? `expected a mapping with a method (one of ${AUTH_METHODS})`
      : `expected one of ${AUTH_METHODS}`,
);

/** `providers.infisical.projects.<name>`. */
export const ProjectSchema = v.object({
  id: text(),
  environment: v.nullish(text(), "prod"),
  auth: maybe(AuthSchema),
});

const AltNameSchema = v.object({
  type: v.picklist(
    ["dns_name", "ip_address", "email", "uri"],
    'expected one of "dns_name", "ip_address", "email", "uri"',
  ),
  value: text(),
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
  project: text(),
  profile_id: text(),
  common_name: text(),
  alt_names: v.nullish(v.array(AltNameSchema, "expected a list of {type, value}"), []),
  ttl: v.nullish(duration(), "90d"),
  key_algorithm: maybe(text()),
  renew_before: v.nullish(duration(), "30d"),
  output: v.object(
    {
      cert: text(),
      key: text(),
      chain: text(),
      ca: maybe(text()),
      mode: v.nullish(fileMode(), "0640"),
    },
    "expected a mapping with cert, key and chain paths",
  ),
  hooks: v.nullish(v.array(text(), "expected a list of commands"), []),
});

/** Test and advanced settings: where the cloud identity endpoints live. */
const EndpointsSchema = v.object({
  aws_sts: v.nullish(text(), "https://sts.amazonaws.com/"),
  aws_metadata: v.nullish(text(), "http://169.254.169.254"),
  aws_ecs_metadata: v.nullish(text(), "http://169.254.170.2"),
  gcp_metadata: v.nullish(text(), "http://metadata.google.internal"),
  azure_imds: v.nullish(text(), "http://169.254.169.254"),
});

const MAPPING = "expected a mapping";

/** `providers.infisical` (SPEC §2, §8.1). */
export const InfisicalSchema = v.object(
  {
    api_url: v.nullish(text(), "https://app.infisical.com"),
    verify_ssl: v.nullish(bool(), true),
    ca_cert: maybe(text()),
    token: v.nullish(v.object({ ttl: v.nullish(seconds(1), 300) }, MAPPING), {}),
    auth: maybe(AuthSchema),
    projects: v.nullish(v.record(v.string(), ProjectSchema, MAPPING), {}),
    tls: v.nullish(
      v.object(
        { certificates: v.nullish(v.record(v.string(), CertificateSchema, MAPPING), {}) },
        MAPPING,
      ),
      {},
    ),
    endpoints: v.nullish(v.object(EndpointsSchema.entries, MAPPING), {}),
    /** Seconds to wait before each retry of a failed setup request (SPEC §9). */
    retry_delays: v.nullish(v.array(seconds(0), "expected a list of seconds"), [5, 10, 20, 40, 60]),
    /** Per-request timeouts in seconds: setup, and the shorter one for lookups. */
    setup_timeout: v.nullish(seconds(0.001), 30),
    lookup_timeout: v.nullish(seconds(0.001), 5),
  },
  MAPPING,
);

const KEY_ID = 'expected an even number of hex digits in quotes, such as "02"';

/** `providers.nitrokeyhsm` with the reference's defaults (SPEC §2, §8.2). */
export const NitrokeyHsmSchema = v.object(
  {
    pkcs11_module: v.nullish(text(), "/usr/lib64/pkcs11/opensc-pkcs11.so"),
    slot: v.nullish(
      v.pipe(
        v.number("expected a slot index (0, 1, ...)"),
        v.integer("expected a slot index (0, 1, ...)"),
        v.minValue(0, "expected a slot index (0, 1, ...)"),
      ),
      0,
    ),
    key_label: v.nullish(text(), "podman-secrets"),
    key_id: v.nullish(
      v.pipe(stringOrNumber(KEY_ID), v.regex(/^(?:[0-9a-fA-F]{2})+$/, KEY_ID)),
      "02",
    ),
    pin: v.nullish(stringOrNumber("expected a PIN string"), null),
    public_key_cache: v.nullish(text(), null),
    pcscd_volume: v.nullish(text(), "pcscd-socket"),
    oaep_hash: v.nullish(v.picklist(["sha256", "sha1"], 'expected "sha256" or "sha1"'), "sha256"),
    init_params: v.nullish(v.string("expected a string"), null),
  },
  MAPPING,
);

/** `providers.local` (SPEC §8.3): no settings yet. */
export const LocalSchema = v.object({}, MAPPING);

/** `cache` (SPEC §2, §6.5, §7). */
export const CacheSchema = v.object(
  {
    enabled: v.nullish(bool(), true),
    backend: maybe(
      v.picklist(["tpm", "hsm", "keyfile"], 'expected one of "tpm", "hsm", "keyfile"'),
    ),
    path: maybe(text()),
    key_file: maybe(text()),
    refresh_interval: v.nullish(duration(), "1h"),
    refresh_randomized_delay: v.nullish(duration(), "5m"),
  },
  MAPPING,
);

/** One Infisical source of a workload. */
export const SourceSchema = v.object(
  {
    project: text(),
    path: v.nullish(text(), "/"),
    recursive: v.nullish(bool(), false),
  },
  "expected a mapping such as {project: myproject, path: /myapp}",
);

/** `workloads.<name>` (SPEC §2). */
export const WorkloadSchema = v.object(
  {
    provider: v.nullish(text(), "infisical"),
    unit: maybe(text()),
    depends_on: v.nullish(v.array(text(), "expected a list of unit names"), []),
    secrets: v.nullish(v.array(SourceSchema, "expected a list of sources"), []),
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

/** `serve` (new): settings of `psi serve` itself. */
export const ServeSchema = v.object(
  {
    // serve refuses a socket directory or state_dir others can write (as OpenSSH's
    // StrictModes); true accepts them, for hosts where that is deliberate.
    allow_insecure_dirs: v.nullish(bool(), false),
  },
  MAPPING,
);

/** The top-level keys (SPEC §2); unknown ones are errors (as in the reference). */
export const ConfigSchema = v.strictObject(
  {
    scope: maybe(v.picklist(["system", "user"], 'expected "system" or "user"')),
    state_dir: maybe(text()),
    systemd_dir: maybe(text()),
    ca_cert: maybe(text()),
    socket_token: maybe(stringOrNumber("expected a token string")),
    providers: v.nullish(
      v.object(
        {
          // An empty block (`local:`) configures the provider with its defaults.
          infisical: v.optional(v.nullable(InfisicalSchema, {})),
          nitrokeyhsm: v.optional(v.nullable(NitrokeyHsmSchema, {})),
          local: v.optional(v.nullable(LocalSchema, {})),
        },
        MAPPING,
      ),
      {},
    ),
    workloads: v.nullish(v.record(WorkloadNameSchema, WorkloadSchema, MAPPING), {}),
    cache: maybe(CacheSchema),
    serve: maybe(ServeSchema),
  },
  "expected a mapping of the top-level keys",
);

/** The validated configuration: the schema is the type. */
export type PsiConfig = v.InferOutput<typeof ConfigSchema>;
export type InfisicalConfig = v.InferOutput<typeof InfisicalSchema>;
export type NitrokeyHsmConfig = v.InferOutput<typeof NitrokeyHsmSchema>;
export type CacheConfig = v.InferOutput<typeof CacheSchema>;
export type ServeConfig = v.InferOutput<typeof ServeSchema>;
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
