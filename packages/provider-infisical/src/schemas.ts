import * as v from "valibot";
import { infisicalError } from "./errors.js";

// Infisical's answers are validated here, at the edge; the rest of the package trusts the
// types. Objects are not strict: Infisical adds fields over time and they must not break us.
// Shapes: https://infisical.com/docs/api-reference (sources per endpoint are in
// packages/testkit/src/fake-infisical.ts, which serves exactly these shapes).

const text = v.string();

/** Infisical coerces numbers on output (`z.coerce.number()`); accept numeric strings too. */
const seconds = v.pipe(
  v.union([v.number(), v.pipe(v.string(), v.regex(/^\d+(\.\d+)?$/))]),
  v.transform(Number),
  v.number(),
  v.minValue(0),
);

/** `POST /api/v1/auth/{method}/login` → `{accessToken, expiresIn, accessTokenMaxTTL, tokenType}`. */
export const LoginResponseSchema = v.object({
  accessToken: v.pipe(text, v.nonEmpty()),
  expiresIn: seconds,
});

const SecretSchema = v.object({
  secretKey: text,
  secretValue: text,
  secretPath: v.optional(text),
  secretValueHidden: v.optional(v.boolean()),
});

/** `GET /api/v4/secrets` → `{secrets: [...], imports?: [{secretPath, environment, folderId?, secrets}]}`. */
export const ListSecretsResponseSchema = v.object({
  secrets: v.array(SecretSchema),
  imports: v.optional(
    v.array(
      v.object({
        secretPath: text,
        environment: text,
        folderId: v.optional(text),
        secrets: v.array(SecretSchema),
      }),
    ),
  ),
});

/** `GET /api/v4/secrets/{secretName}` → `{secret: {...}}`. */
export const GetSecretResponseSchema = v.object({ secret: SecretSchema });

/** A write answers with the secret, or with an approval request under a protection policy. */
export const WriteSecretResponseSchema = v.union([
  v.object({ secret: v.object({ secretKey: text }) }),
  v.object({ approval: v.looseObject({}) }),
]);

/** `POST /api/v4/secrets/batch` → `{secrets: [...]}` or `{approval}`. */
export const BatchResponseSchema = v.union([
  v.object({ secrets: v.array(v.object({ secretKey: text })) }),
  v.object({ approval: v.looseObject({}) }),
]);

/** `GET /api/v1/folders?workspaceId&environment&path` → `{folders: [{id, name, ...}]}` (the children of path). */
export const FolderListResponseSchema = v.object({
  folders: v.array(v.object({ id: text, name: text })),
});

/** `GET /api/v2/secret-imports?projectId&environment&path` → the imports attached to that folder. */
export const SecretImportListResponseSchema = v.object({
  secretImports: v.array(v.object({ importPath: text, importEnv: v.object({ slug: text }) })),
});

/** `POST /api/v1/folders` → `{folder: {id, name, ...}}`. */
export const FolderResponseSchema = v.object({ folder: v.object({ id: text, name: text }) });

const IssuedCertificateSchema = v.object({
  certificate: text,
  issuingCaCertificate: text,
  certificateChain: text,
  serialNumber: text,
  certificateId: text,
  privateKey: v.optional(text),
});

/**
 * `POST /api/v1/cert-manager/certificates` → `{certificate: {...}, certificateRequestId, status?, message?}`;
 * `certificate` is absent while a request waits for approval.
 */
export const IssueCertificateResponseSchema = v.object({
  certificate: v.optional(IssuedCertificateSchema),
  certificateRequestId: v.optional(text),
  status: v.optional(text),
  message: v.optional(text),
});

/** `POST /api/v1/cert-manager/certificates/{id}/renew` → the certificate fields at top level. */
export const RenewCertificateResponseSchema = v.union([
  IssuedCertificateSchema,
  v.object({ certificate: IssuedCertificateSchema }),
]);

/** `GET /api/v1/cert-manager/certificates/certificate-requests/{id}` (fields null until issued). */
export const CertificateRequestResponseSchema = v.object({
  status: text,
  certificateId: v.nullish(text),
  errorMessage: v.nullish(v.string()),
});

/** `GET /api/v1/cert-manager/certificates/{id}/bundle` → `{certificate, certificateChain, privateKey, serialNumber}`. */
export const CertificateBundleResponseSchema = v.object({
  certificate: text,
  certificateChain: v.nullish(v.string()),
  privateKey: v.nullish(v.string()),
  serialNumber: text,
});

/** A certificate as Infisical issues or renews it (PEM strings). */
export type IssuedCertificate = v.InferOutput<typeof IssuedCertificateSchema>;

function describeIssue(issue: v.BaseIssue<unknown>): string {
  const path = (issue.path ?? [])
    .map((item) => (typeof item.key === "number" ? `[${item.key}]` : `.${String(item.key)}`))
    .join("")
    .replace(/^\./, "");
  // Only the place and the expected type: `received` could echo a value from the body.
  const expected = issue.expected ?? issue.type;
  return `${path || "body"}: expected ${expected}`;
}

/**
 * Parses an Infisical answer body against `schema`; anything else (not JSON, wrong shape)
 * is a `provider.bad_response` naming `what` and the first offending field, never a value.
 */
export function parseAnswer<TSchema extends v.GenericSchema>(
  schema: TSchema,
  body: string,
  what: string,
): v.InferOutput<TSchema> {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    throw infisicalError(
      "provider.bad_response",
      `Infisical answered ${what} with a body that is not JSON`,
      {
        hint: "check that api_url points at an Infisical server (not a proxy or login page)",
      },
    );
  }
  const result = v.safeParse(schema, json);
  if (!result.success) {
    const first = result.issues[0];
    throw infisicalError(
      "provider.bad_response",
      `Infisical answered ${what} with an unexpected shape (${first ? describeIssue(first) : "invalid"})`,
      { hint: "check that api_url points at a supported Infisical version" },
    );
  }
  return result.output;
}
