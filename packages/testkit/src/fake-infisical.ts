// A fake Infisical for tests (TESTING.md, "Infisical"): no Infisical server can run here,
// so this HTTP server on 127.0.0.1 implements exactly the endpoints PSI uses, with the
// request and response shapes of Infisical's API reference. Each endpoint names its
// source. Contract tests in packages/provider-infisical/test/fake-contract.test.ts pin them.
//
// Also here: startFakeCloudMetadata(), one small server standing in for the AWS EC2
// instance metadata service (IMDSv2), the ECS container credentials endpoint, the GCP
// metadata server and Azure IMDS, so the cloud auth methods run end to end.

import {
  createHash,
  createHmac,
  randomBytes,
  randomUUID,
  timingSafeEqual,
  X509Certificate,
} from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createTestCa, issueTestCertificate } from "./tls.js";

/** One request the fake answered (bodies hold credentials and values: never print them). */
export interface FakeRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  body: unknown;
  /** The bearer token sent, if any. */
  bearer: string | undefined;
  status: number;
}

/** Options of {@link startFakeInfisical}. */
export interface FakeInfisicalOptions {
  /** `expiresIn` of issued access tokens, seconds (default 7200, Infisical's default). */
  expiresIn?: number;
  /** Clock in milliseconds (token expiry). */
  now?: () => number;
  /** HS256 key that GCP/Azure JWTs must be signed with (share it with startFakeCloudMetadata). */
  jwtKey?: string;
}

/** Where a secret lives. */
export interface FakeLocation {
  projectId: string;
  environment: string;
  path: string;
}

/** A certificate the fake issued. */
export interface FakeCertificate {
  certificateId: string;
  profileId: string;
  commonName: string;
  altNames: Array<{ type: string; value: string }>;
  ttl: string | undefined;
  keyAlgorithm: string | undefined;
  certificate: string;
  renewedFrom?: string;
}

/** A running fake Infisical: its URL, state mutators, switches and request log. */
export interface FakeInfisical {
  url: string;
  port: number;
  /** Registers a universal-auth machine identity (optionally limited to `projects`). */
  addUniversalAuth(identity: {
    clientId: string;
    clientSecret: string;
    identityId?: string;
    projects?: string[];
  }): void;
  /** Registers an aws-auth/gcp-auth/azure-auth machine identity. */
  addIdentity(identity: {
    method: "aws-auth" | "gcp-auth" | "azure-auth";
    identityId: string;
    projects?: string[];
  }): void;
  /** An AWS key pair (and session token) whose signatures aws-auth accepts. */
  addAwsKey(accessKeyId: string, secretAccessKey: string, sessionToken?: string): void;
  setSecret(at: FakeLocation & { key: string; value: string }): void;
  deleteSecret(at: FakeLocation & { key: string }): boolean;
  getSecret(at: FakeLocation & { key: string }): string | undefined;
  /** Creates a folder and its parents. */
  addFolder(at: FakeLocation): void;
  /** Folder paths of a project environment, sorted. */
  folders(projectId: string, environment: string): string[];
  /**
   * Makes the folder at `at` import the secrets of `from`: same project unless
   * `from.projectId` names another (a cross-project import with its grant in place).
   */
  addImport(
    at: FakeLocation & { from: { environment: string; path: string; projectId?: string } },
  ): void;
  /**
   * Denies every identity read access to a folder: reads of it answer 403, and so does
   * expanding a `${...}` reference that points into it (Infisical's canExpandValue).
   */
  denyRead(at: FakeLocation): void;
  addCertificateProfile(profile: { profileId: string; projectId: string }): void;
  certificates: FakeCertificate[];
  /** Issues a token directly (as a login would). */
  issueToken(identityId: string): string;
  /** Expires every token issued so far (they answer 401 from now on). */
  expireTokens(): void;
  /** Logins per endpoint segment ("universal-auth", "aws-auth", ...). */
  logins(method?: string): number;
  /** Closes the listener and drops connections: requests are refused until up(). */
  down(): Promise<void>;
  up(): Promise<void>;
  /** Delays every answer by `ms` (0 turns it off). */
  slow(ms: number): void;
  /** Answers the next `times` requests (default: all) with `status`; null turns it off. */
  fail5xx(status: number | null, times?: number): void;
  /**
   * Rate limiting: the next `times` requests (default: all) answer 429 with
   * `Retry-After: retryAfterSeconds` (default 1); null turns it off.
   */
  rateLimit(times: number | null, retryAfterSeconds?: number): void;
  /**
   * Some self-hosted versions answer a listing of a missing folder with an empty 200
   * (`{secrets: [], imports: []}`) instead of 404: true switches the fake to that.
   */
  emptyForMissingFolder(on: boolean): void;
  /**
   * Certificate issue waits for approval: answers `{certificateRequestId, status:
   * "pending_approval", message}` without a certificate until {@link approveCertificates}.
   */
  requireCertificateApproval(on: boolean): void;
  /** Issues every certificate request waiting for approval (its status becomes `issued`). */
  approveCertificates(): Promise<void>;
  /** Renewals answer without `privateKey` (the key stays the one of the renewed certificate). */
  renewWithoutPrivateKey(on: boolean): void;
  requests: FakeRequest[];
  /** Requests with `method` whose path starts with `pathPrefix`. */
  count(method: string, pathPrefix: string): number;
  stop(): Promise<void>;
}

interface StoredSecret {
  id: string;
  value: string;
  comment: string;
  version: number;
  createdAt: string;
  updatedAt: string;
}

interface Folder {
  id: string;
  name: string;
  parentId: string | null;
  secrets: Map<string, StoredSecret>;
  imports: ImportEntry[];
  createdAt: string;
}

/** One secret import of a folder; `projectId` set for a cross-project import. */
interface ImportEntry {
  projectId: string | undefined;
  environment: string;
  path: string;
}

/** A certificate request: issued at once, or waiting for approval. */
interface CertificateRequestRecord {
  id: string;
  profileId: string;
  attributes: {
    commonName: string;
    altNames: Array<{ type: string; value: string }>;
    ttl?: string;
    keyAlgorithm?: string;
  };
  status: "pending_approval" | "issued";
  issued?: { fields: Record<string, string>; record: FakeCertificate };
  createdAt: string;
  updatedAt: string;
}

/** Infisical's LEVEL_BREAK (secret-import-fns.ts): imports of imports are followed this deep. */
const IMPORT_DEPTH_LIMIT = 10;
/** Infisical's MAX_SECRET_REFERENCE_DEPTH (secret-reference-fns.ts). */
const REFERENCE_DEPTH_LIMIT = 10;
/** Infisical's INTERPOLATION_PATTERN_STRING (secret-reference-fns.ts). */
const REFERENCE = /\$\{([\w.-]+)\}/g;

interface Identity {
  identityId: string;
  method: string;
  projects: string[] | undefined;
  clientId?: string;
  clientSecret?: string;
}

class HttpProblem extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly error: string,
    readonly details?: unknown,
  ) {
    super(message);
  }
}

const ERROR_NAMES: Record<number, string> = {
  400: "BadRequest",
  401: "UnauthorizedError",
  403: "PermissionDenied",
  404: "NotFound",
  429: "Too Many Requests",
  500: "InternalServerError",
  502: "BadGateway",
  503: "ServiceUnavailable",
};

const problem = (status: number, message: string) =>
  new HttpProblem(status, message, ERROR_NAMES[status] ?? "Error");

/** Infisical's route schemas: `secretPath` trimmed, default "/", trailing "/" removed. */
function normalizePath(path: unknown): string {
  const text = typeof path === "string" && path.trim() !== "" ? path.trim() : "/";
  const joined = `/${text}`.replace(/\/+/g, "/");
  return joined.length > 1 ? joined.replace(/\/$/, "") : "/";
}

function parentOf(path: string): string | undefined {
  if (path === "/") return undefined;
  const index = path.lastIndexOf("/");
  return index <= 0 ? "/" : path.slice(0, index);
}

/** Infisical's create/update transform of secretValue (v4 secret-router): trim, keep one trailing "\n". */
function infisicalValue(value: string): string {
  return value.at(-1) === "\n" ? `${value.trim()}\n` : value.trim();
}

function requireString(body: Record<string, unknown>, field: string): string {
  const value = body[field];
  if (typeof value !== "string" || value.trim() === "") throw problem(400, `${field}: Required`);
  return value.trim();
}

function base64url(data: Buffer | string): string {
  return Buffer.from(data).toString("base64url");
}

/** An HS256 JWT (the fake metadata services sign with the key the fake Infisical checks). */
export function signFakeJwt(claims: Record<string, unknown>, key: string): string {
  const head = base64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const body = base64url(JSON.stringify(claims));
  const signature = createHmac("sha256", key).update(`${head}.${body}`).digest();
  return `${head}.${body}.${base64url(signature)}`;
}

function verifyFakeJwt(jwt: string, key: string | undefined): Record<string, unknown> | undefined {
  const parts = jwt.split(".");
  if (parts.length !== 3) return undefined;
  const [head, body, signature] = parts as [string, string, string];
  if (key !== undefined) {
    const expected = createHmac("sha256", key).update(`${head}.${body}`).digest();
    const given = Buffer.from(signature, "base64url");
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
  }
  try {
    const claims: unknown = JSON.parse(Buffer.from(body, "base64url").toString("utf8"));
    return typeof claims === "object" && claims !== null
      ? (claims as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

const sha256hex = (data: string) => createHash("sha256").update(data, "utf8").digest("hex");
const hmac = (key: Buffer | string, data: string) =>
  createHmac("sha256", key).update(data, "utf8").digest();

/**
 * Verifies a forwarded STS GetCallerIdentity request the way AWS would: SigV4 recomputed
 * from the forwarded headers and body with the registered secret key (written here from
 * the SigV4 specification, independently of the client's signing library).
 * https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html
 */
function verifySigV4(
  method: string,
  headers: Record<string, unknown>,
  body: string,
  keys: Map<string, { secret: string; sessionToken: string | undefined }>,
): string {
  const header = (name: string): string | undefined => {
    const found = Object.entries(headers).find(([key]) => key.toLowerCase() === name);
    return found === undefined ? undefined : String(found[1]);
  };
  if (method !== "POST") throw problem(401, "aws-auth: iamHttpRequestMethod must be POST");
  if (body !== "Action=GetCallerIdentity&Version=2011-06-15")
    throw problem(401, "aws-auth: the body is not GetCallerIdentity");
  const authorization = header("authorization");
  const amzDate = header("x-amz-date");
  if (!authorization || !amzDate || !header("host"))
    throw problem(401, "aws-auth: Authorization, X-Amz-Date and Host are required");
  const match =
    /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]{64})$/.exec(
      authorization,
    );
  if (!match) throw problem(401, "aws-auth: malformed Authorization header");
  const [, accessKeyId, date, region, service, signedHeaderList, signature] =
    match as unknown as string[];
  if (region !== "us-east-1" || service !== "sts")
    throw problem(401, "aws-auth: the credential scope must be us-east-1/sts");
  if (!amzDate.startsWith(date!))
    throw problem(401, "aws-auth: X-Amz-Date does not match the credential scope");
  const key = keys.get(accessKeyId!);
  if (!key) throw problem(401, "aws-auth: unknown access key");
  const signed = signedHeaderList!.split(";");
  for (const required of [
    "host",
    "x-amz-date",
    ...(key.sessionToken ? ["x-amz-security-token"] : []),
  ]) {
    if (!signed.includes(required)) throw problem(401, `aws-auth: ${required} is not signed`);
  }
  if (key.sessionToken && header("x-amz-security-token") !== key.sessionToken)
    throw problem(401, "aws-auth: wrong session token");
  const canonicalHeaders = signed
    .map((name) => `${name}:${(header(name) ?? "").trim().replace(/\s+/g, " ")}\n`)
    .join("");
  const canonicalRequest = [
    method,
    "/",
    "",
    canonicalHeaders,
    signedHeaderList,
    sha256hex(body),
  ].join("\n");
  const scope = `${date}/${region}/${service}/aws4_request`;
  const stringToSign = ["AWS4-HMAC-SHA256", amzDate, scope, sha256hex(canonicalRequest)].join("\n");
  const signingKey = hmac(
    hmac(hmac(hmac(`AWS4${key.secret}`, date!), region!), service!),
    "aws4_request",
  );
  const expected = hmac(signingKey, stringToSign).toString("hex");
  if (expected !== signature) throw problem(401, "aws-auth: SignatureDoesNotMatch");
  return accessKeyId!;
}

async function readBody(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    size += (chunk as Buffer).length;
    if (size > 1024 * 1024) throw problem(400, "body too large");
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString("utf8");
}

function ttlDays(ttl: string | undefined): number {
  const match = /^(\d+)\s*([smhd]?)$/.exec(ttl ?? "90d");
  if (!match) return 90;
  const amount = Number(match[1]);
  const seconds = { s: 1, m: 60, h: 3600, d: 86400, "": 86400 }[
    match[2] as "s" | "m" | "h" | "d" | ""
  ];
  return Math.max(1, Math.ceil((amount * seconds) / 86400));
}

/** Starts the fake on 127.0.0.1 with a free port. */
export async function startFakeInfisical(
  options: FakeInfisicalOptions = {},
): Promise<FakeInfisical> {
  const now = options.now ?? Date.now;
  const expiresIn = options.expiresIn ?? 7200;
  const stores = new Map<string, Map<string, Folder>>();
  const identities = new Map<string, Identity>();
  const awsKeys = new Map<string, { secret: string; sessionToken: string | undefined }>();
  const tokens = new Map<string, { identityId: string; expiresAt: number }>();
  const loginCounts = new Map<string, number>();
  const profiles = new Map<string, string>();
  const certificates: FakeCertificate[] = [];
  const requests: FakeRequest[] = [];
  let delayMs = 0;
  let failure: { status: number; remaining: number } | null = null;
  let limited: { remaining: number; retryAfter: number } | null = null;
  let emptyForMissing = false;
  let approvalRequired = false;
  let renewKeyless = false;
  const denied = new Set<string>();
  const certificateRequests = new Map<string, CertificateRequestRecord>();
  const privateKeys = new Map<string, string>();
  let certDir: string | undefined;
  const locationKey = (projectId: string, environment: string, path: string) =>
    `${projectId}\u0000${environment}\u0000${path}`;

  const storeKey = (projectId: string, environment: string) => `${projectId}\u0000${environment}`;

  function folderAt(
    projectId: string,
    environment: string,
    path: string,
    create: boolean,
  ): Folder | undefined {
    let store = stores.get(storeKey(projectId, environment));
    if (!store) {
      if (!create) return undefined;
      store = new Map();
      stores.set(storeKey(projectId, environment), store);
    }
    const existing = store.get(path);
    if (existing || !create) return existing;
    const parentPath = parentOf(path);
    const parent =
      parentPath === undefined ? undefined : folderAt(projectId, environment, parentPath, true);
    const stamp = new Date(now()).toISOString();
    const folder: Folder = {
      id: randomUUID(),
      name: path === "/" ? "root" : path.slice(path.lastIndexOf("/") + 1),
      parentId: parent?.id ?? null,
      secrets: new Map(),
      imports: [],
      createdAt: stamp,
    };
    store.set(path, folder);
    return folder;
  }

  function issueToken(identityId: string): string {
    const token = `fake-${randomBytes(24).toString("hex")}`;
    tokens.set(token, { identityId, expiresAt: now() + expiresIn * 1000 });
    return token;
  }

  function loginAnswer(identity: Identity) {
    loginCounts.set(identity.method, (loginCounts.get(identity.method) ?? 0) + 1);
    // Response shape of every login route: { accessToken, expiresIn, accessTokenMaxTTL, tokenType: "Bearer" }
    // https://infisical.com/docs/api-reference/endpoints/aws-auth/login (same for all methods;
    // Infisical/infisical backend/src/server/routes/v1/identity-*-auth-router.ts)
    return {
      accessToken: issueToken(identity.identityId),
      expiresIn,
      accessTokenMaxTTL: 2592000,
      tokenType: "Bearer",
    };
  }

  function authenticate(bearer: string | undefined): Identity {
    if (!bearer) throw problem(401, "Missing Authorization header");
    const token = tokens.get(bearer);
    if (!token) throw problem(401, "Invalid token");
    if (now() >= token.expiresAt) throw problem(401, "Token expired");
    const identity = identities.get(token.identityId);
    if (!identity) throw problem(401, "Identity not found");
    return identity;
  }

  function authorize(identity: Identity, projectId: string): void {
    if (identity.projects && !identity.projects.includes(projectId)) {
      throw problem(403, "You are not allowed to access this project");
    }
  }

  function rawSecret(key: string, secret: StoredSecret, at: FakeLocation, hideValue: boolean) {
    // Secret object of the v4 routes (secretRawSchema + secretPath, secretValueHidden, tags):
    // fields as in https://infisical.com/docs/api-reference/endpoints/deprecated/secrets/list
    // (v3 raw, the same schema) and Infisical/infisical backend/src/server/routes/v4/secret-router.ts
    return {
      id: secret.id,
      _id: secret.id,
      workspace: at.projectId,
      environment: at.environment,
      version: secret.version,
      type: "shared",
      secretKey: key,
      secretValue: hideValue ? "<hidden-by-infisical>" : secret.value,
      secretValueHidden: hideValue,
      secretComment: secret.comment,
      secretPath: at.path,
      createdAt: secret.createdAt,
      updatedAt: secret.updatedAt,
      tags: [],
      secretMetadata: [],
    };
  }

  function folderOrNotFound(projectId: string, environment: string, path: string): Folder {
    const folder = folderAt(projectId, environment, path, false);
    if (!folder)
      throw problem(
        404,
        `Folder with path '${path}' in environment with slug '${environment}' not found`,
      );
    return folder;
  }

  /**
   * The imports of `folders` as Infisical resolves them (fnSecretsV2FromImports in
   * backend/src/services/secret-import/secret-import-fns.ts): one entry per distinct
   * imported folder, in order; missing folders skipped; each entry's secrets are the
   * imported folder's own followed by those of its imports, and theirs, up to
   * IMPORT_DEPTH_LIMIT levels, every folder visited once (cycles end there). A cross-project
   * import reads the other project's folder.
   */
  function resolveImports(projectId: string, folders: Folder[]) {
    type Resolved = { key: string; secret: StoredSecret; at: FakeLocation };
    const seen = new Set<string>();
    const visit = (entries: ImportEntry[], from: string, depth: number) => {
      const out: Array<{
        entry: ImportEntry;
        at: FakeLocation;
        source: Folder;
        secrets: Resolved[];
      }> = [];
      if (depth > IMPORT_DEPTH_LIMIT) return out;
      for (const entry of entries) {
        const at = {
          projectId: entry.projectId ?? from,
          environment: entry.environment,
          path: entry.path,
        };
        const id = locationKey(at.projectId, at.environment, at.path);
        if (seen.has(id)) continue;
        const source = folderAt(at.projectId, at.environment, at.path, false);
        if (!source) continue;
        seen.add(id);
        const secrets: Resolved[] = [...source.secrets].map(([key, secret]) => ({
          key,
          secret,
          at,
        }));
        for (const deeper of visit(source.imports, at.projectId, depth + 1))
          secrets.push(...deeper.secrets);
        const keys = new Set<string>();
        out.push({
          entry,
          at,
          source,
          // The imported folder's own secrets win over those it imports in turn.
          secrets: secrets.filter(({ key }) => !keys.has(key) && keys.add(key) !== undefined),
        });
      }
      return out;
    };
    return visit(
      folders.flatMap((folder) => folder.imports),
      projectId,
      0,
    );
  }

  /** 403 for a folder {@link FakeInfisical.denyRead} closed (the permission check of every read route). */
  function checkRead(at: FakeLocation): void {
    if (denied.has(locationKey(at.projectId, at.environment, at.path)))
      throw problem(
        403,
        `You do not have permission to read secrets in environment '${at.environment}' at path '${at.path}'`,
      );
  }

  /**
   * expandSecretReferences (backend/src/services/secret-v2-bridge/secret-reference-fns.ts;
   * https://infisical.com/docs/documentation/platform/secret-reference): ${KEY} names a
   * secret of the same folder, ${env.folder.sub.KEY} one elsewhere in the project; values
   * are expanded again up to REFERENCE_DEPTH_LIMIT, a circular one is left as it is, a
   * missing secret leaves the reference in place, and a reference into a folder the
   * identity cannot read answers 403 naming both secrets.
   */
  function expandValue(value: string, at: FakeLocation, key: string): string {
    const expand = (
      text: string,
      where: FakeLocation,
      depth: number,
      visited: Set<string>,
    ): string => {
      if (depth > REFERENCE_DEPTH_LIMIT) return text;
      return text.replace(REFERENCE, (whole, name: string) => {
        const parts = name.split(".");
        const target =
          parts.length === 1
            ? { ...where, key: parts[0]! }
            : {
                projectId: where.projectId,
                environment: parts[0]!,
                path: normalizePath(parts.slice(1, -1).join("/")),
                key: parts.at(-1)!,
              };
        if (denied.has(locationKey(target.projectId, target.environment, target.path)))
          throw problem(
            403,
            `You do not have permission to read secret '${target.key}' in environment '${target.environment}' at path '${target.path}', which is referenced by secret '${key}' in environment '${at.environment}' at path '${at.path}'.`,
          );
        const id = locationKey(
          target.projectId,
          target.environment,
          `${target.path}\u0000${target.key}`,
        );
        const found = folderAt(
          target.projectId,
          target.environment,
          target.path,
          false,
        )?.secrets.get(target.key);
        if (!found?.value) return whole;
        if (visited.has(id)) return found.value;
        return expand(found.value, target, depth + 1, new Set([...visited, id]));
      });
    };
    return expand(
      value,
      at,
      0,
      new Set([locationKey(at.projectId, at.environment, `${at.path}\u0000${key}`)]),
    );
  }

  function makeCertificate(
    profileId: string,
    attributes: {
      commonName: string;
      altNames: Array<{ type: string; value: string }>;
      ttl?: string;
      keyAlgorithm?: string;
    },
    /** The private key (PEM) to certify again, for a renewal that keeps the key. */
    reuseKey?: string,
  ) {
    return (async () => {
      if (!certDir) {
        certDir = await mkdtemp(join(tmpdir(), "psi-fake-ca-"));
        await createTestCa(certDir, { subject: "/CN=PSI Fake Infisical CA", days: 3650 });
      }
      const id = randomUUID();
      const keyPath = join(certDir, `${id}.key`);
      const certPath = join(certDir, `${id}.pem`);
      const rsa = /^RSA_(\d+)$/.exec(attributes.keyAlgorithm ?? "");
      if (reuseKey !== undefined) await writeFile(keyPath, reuseKey, { mode: 0o600 });

      const prefix: Record<string, string> = {
        dns_name: "DNS",
        ip_address: "IP",
        email: "email",
        uri: "URI",
      };
      const san = attributes.altNames
        .map((name) => `${prefix[name.type] ?? "DNS"}:${name.value}`)
        .join(",");
      await issueTestCertificate({
        ca: { cert: join(certDir, "ca.pem"), key: join(certDir, "ca.key") },
        cert: certPath,
        key: keyPath,
        subject: `/CN=${attributes.commonName.replace(/[/=]/g, "_")}`,
        days: ttlDays(attributes.ttl),
        ...(san ? { subjectAltName: san } : {}),
        ...(rsa ? { newKey: ["-newkey", `rsa:${rsa[1]}`] } : {}),
        ...(reuseKey === undefined ? {} : { keepKey: true }),
      });
      const [certificate, privateKey, ca] = await Promise.all([
        readFile(certPath, "utf8"),
        readFile(keyPath, "utf8"),
        readFile(join(certDir, "ca.pem"), "utf8"),
      ]);
      await Promise.all([rm(keyPath), rm(certPath)]);
      const record: FakeCertificate = {
        certificateId: id,
        profileId,
        commonName: attributes.commonName,
        altNames: attributes.altNames,
        ttl: attributes.ttl,
        keyAlgorithm: attributes.keyAlgorithm,
        certificate,
      };
      certificates.push(record);
      privateKeys.set(id, privateKey);
      return {
        record,
        fields: {
          certificate,
          issuingCaCertificate: ca,
          certificateChain: ca,
          serialNumber: new X509Certificate(certificate).serialNumber.toLowerCase(),
          certificateId: id,
          privateKey,
        },
      };
    })();
  }

  async function route(
    method: string,
    path: string,
    query: Record<string, string>,
    body: Record<string, unknown>,
    bearer: string | undefined,
  ): Promise<unknown> {
    // POST /api/v1/auth/universal-auth/login  body { clientId, clientSecret }
    // https://infisical.com/docs/documentation/platform/identities/universal-auth
    // (Infisical/infisical backend/src/server/routes/v1/identity-universal-auth-router.ts)
    if (method === "POST" && path === "/api/v1/auth/universal-auth/login") {
      const clientId = requireString(body, "clientId");
      const clientSecret = requireString(body, "clientSecret");
      const identity = [...identities.values()].find((entry) => entry.clientId === clientId);
      if (!identity || identity.clientSecret !== clientSecret)
        throw problem(401, "Invalid credentials");
      return loginAnswer(identity);
    }
    // POST /api/v1/auth/aws-auth/login  body { identityId, iamHttpRequestMethod (default POST),
    // iamRequestBody (base64), iamRequestHeaders (base64 JSON) }; Infisical replays the signed
    // STS GetCallerIdentity request. https://infisical.com/docs/api-reference/endpoints/aws-auth/login
    if (method === "POST" && path === "/api/v1/auth/aws-auth/login") {
      const identity = identities.get(requireString(body, "identityId"));
      const iamBody = Buffer.from(requireString(body, "iamRequestBody"), "base64").toString("utf8");
      let headers: unknown;
      try {
        headers = JSON.parse(
          Buffer.from(requireString(body, "iamRequestHeaders"), "base64").toString("utf8"),
        );
      } catch {
        throw problem(401, "Malformed signed STS request");
      }
      if (typeof headers !== "object" || headers === null)
        throw problem(401, "Malformed signed STS request");
      const iamMethod =
        typeof body["iamHttpRequestMethod"] === "string" ? body["iamHttpRequestMethod"] : "POST";
      verifySigV4(iamMethod, headers as Record<string, unknown>, iamBody, awsKeys);
      if (identity?.method !== "aws-auth")
        throw problem(401, "AWS auth method not found for identity");
      return loginAnswer(identity);
    }
    // POST /api/v1/auth/gcp-auth/login  body { identityId, jwt } (GCP ID token, audience = identityId)
    // https://infisical.com/docs/documentation/platform/identities/gcp-auth
    // (Infisical/infisical backend/src/server/routes/v1/identity-gcp-auth-router.ts)
    // POST /api/v1/auth/azure-auth/login  body { identityId, jwt } (managed identity access token)
    // https://infisical.com/docs/documentation/platform/identities/azure-auth
    // (Infisical/infisical backend/src/server/routes/v1/identity-azure-auth-router.ts)
    if (
      method === "POST" &&
      (path === "/api/v1/auth/gcp-auth/login" || path === "/api/v1/auth/azure-auth/login")
    ) {
      const kind = path.includes("gcp") ? "gcp-auth" : "azure-auth";
      const identityId = requireString(body, "identityId");
      const claims = verifyFakeJwt(requireString(body, "jwt"), options.jwtKey);
      if (!claims) throw problem(401, "Invalid JWT");
      const audience = kind === "gcp-auth" ? identityId : "https://management.azure.com/";
      if (claims["aud"] !== audience) throw problem(401, "JWT audience mismatch");
      const identity = identities.get(identityId);
      if (!identity || identity.method !== kind)
        throw problem(401, `${kind} method not found for identity`);
      return loginAnswer(identity);
    }

    // Everything below needs a bearer token.
    const identity = authenticate(bearer);

    // GET /api/v4/secrets?projectId&environment&secretPath&recursive&viewSecretValue&
    //   expandSecretReferences&include_imports  → { secrets: [...], imports?: [{ secretPath,
    //   environment, folderId?, secrets }] }
    // The documented query names (include_imports, not includeImports) and the imports shape are
    // from Infisical/infisical backend/src/server/routes/v4/secret-router.ts (operationId
    // listSecretsV4; the API reference is generated from it), matching
    // https://infisical.com/docs/api-reference/endpoints/deprecated/secrets/list (v3 raw, same
    // response) and @infisical/sdk ListSecretsResponse. As getSecrets in
    // backend/src/services/secret-v2-bridge/secret-v2-bridge-service.ts does: a recursive
    // listing returns the imports of every folder of the tree (nothing says which folder an
    // import belongs to: the response schema has no such field), imports of imports are
    // followed (resolveImports), and with expandSecretReferences=true every local value is
    // expanded; one reference that cannot be expanded fails the listing with 403 "Failed to
    // expand one or more secret references" and `details` (imported values that cannot be
    // expanded stay as they are: their expansion runs under Promise.allSettled).
    if (method === "GET" && path === "/api/v4/secrets") {
      const projectId = query["projectId"];
      const environment = query["environment"];
      if (!projectId || !environment) throw problem(400, "Missing project id or environment");
      authorize(identity, projectId);
      const secretPath = normalizePath(query["secretPath"]);
      const hide = query["viewSecretValue"] === "false";
      const expand = query["expandSecretReferences"] === "true" && !hide;
      if (emptyForMissing && !folderAt(projectId, environment, secretPath, false))
        return query["include_imports"] === "true" ? { secrets: [], imports: [] } : { secrets: [] };
      const root = folderOrNotFound(projectId, environment, secretPath);
      checkRead({ projectId, environment, path: secretPath });
      const store = stores.get(storeKey(projectId, environment))!;
      const paths =
        query["recursive"] === "true"
          ? [...store.keys()]
              .filter(
                (p) =>
                  p === secretPath || p.startsWith(secretPath === "/" ? "/" : `${secretPath}/`),
              )
              .filter((p) => !denied.has(locationKey(projectId, environment, p)))
              .sort()
          : [secretPath];
      const failures: string[] = [];
      const secrets = paths.flatMap((p) =>
        [...store.get(p)!.secrets].map(([key, secret]) => {
          const at = { projectId, environment, path: p };
          const raw = rawSecret(key, secret, at, hide);
          if (expand) {
            try {
              raw.secretValue = expandValue(secret.value, at, key);
            } catch (error) {
              failures.push(error instanceof Error ? error.message : String(error));
            }
          }
          return raw;
        }),
      );
      if (failures.length > 0)
        throw new HttpProblem(
          403,
          "Failed to expand one or more secret references",
          "PermissionDenied",
          failures,
        );
      const answer: Record<string, unknown> = { secrets };
      if (query["include_imports"] === "true") {
        const folders = paths.map((p) => (p === secretPath ? root : store.get(p)!));
        answer["imports"] = resolveImports(projectId, folders).map(
          ({ entry, source, secrets }) => ({
            secretPath: entry.path,
            environment: entry.environment,
            folderId: source.id,
            secrets: secrets.map(({ key, secret, at }) => {
              const { createdAt: _c, updatedAt: _u, ...rest } = rawSecret(key, secret, at, hide);
              if (expand) {
                try {
                  rest.secretValue = expandValue(secret.value, at, key);
                } catch {
                  // allSettled in fnSecretsV2FromImports: the value stays unexpanded.
                }
              }
              return rest;
            }),
          }),
        );
      }
      return answer;
    }

    // POST /api/v4/secrets/batch  body { projectId, environment, secretPath, secrets: [{ secretKey,
    // secretValue, secretComment? }] (min 1) } → { secrets: [...] }; an existing key fails the batch.
    // secret-router.ts v4 (operationId createManySecretsV4); same body as
    // https://infisical.com/docs/api-reference/endpoints/deprecated/secrets/create-many with projectId
    if (method === "POST" && path === "/api/v4/secrets/batch") {
      const projectId = requireString(body, "projectId");
      const environment = requireString(body, "environment");
      authorize(identity, projectId);
      const secretPath = normalizePath(body["secretPath"]);
      const list = body["secrets"];
      if (!Array.isArray(list) || list.length === 0)
        throw problem(400, "secrets: Array must contain at least 1 element(s)");
      const folder = folderOrNotFound(projectId, environment, secretPath);
      const entries = list.map((item: unknown) => {
        if (typeof item !== "object" || item === null)
          throw problem(400, "secrets: Expected object");
        const entry = item as Record<string, unknown>;
        const value = entry["secretValue"];
        if (typeof value !== "string") throw problem(400, "secretValue: Required");
        return {
          key: requireString(entry, "secretKey"),
          value,
          comment: typeof entry["secretComment"] === "string" ? entry["secretComment"] : "",
        };
      });
      const clash = entries.find((entry) => folder.secrets.has(entry.key));
      if (clash) throw problem(400, `Secret already exist: ${clash.key}`);
      const stamp = new Date(now()).toISOString();
      return {
        secrets: entries.map((entry) => {
          const secret = {
            id: randomUUID(),
            value: infisicalValue(entry.value),
            comment: entry.comment,
            version: 1,
            createdAt: stamp,
            updatedAt: stamp,
          };
          folder.secrets.set(entry.key, secret);
          return rawSecret(entry.key, secret, { projectId, environment, path: secretPath }, false);
        }),
      };
    }

    const single = /^\/api\/v4\/secrets\/([^/]+)$/.exec(path);
    if (single) {
      const key = decodeURIComponent(single[1]!);
      // GET /api/v4/secrets/{secretName}?projectId&environment&secretPath&viewSecretValue&
      //   expandSecretReferences&include_imports → { secret: {...} }; 404 for an unknown key.
      // secret-router.ts v4 (operationId getSecretByNameV4; its query also says include_imports)
      if (method === "GET") {
        const projectId = query["projectId"];
        const environment = query["environment"];
        if (!projectId || !environment) throw problem(400, "Missing project id or environment");
        authorize(identity, projectId);
        // getSecretByName (secret-v2-bridge-service.ts): imports only when the folder has no
        // such key, the last import first, imports of imports included; the local value is
        // expanded, and a reference that cannot be expanded answers 403 naming both secrets.
        const secretPath = normalizePath(query["secretPath"]);
        const hide = query["viewSecretValue"] === "false";
        const expand = query["expandSecretReferences"] === "true" && !hide;
        const folder = folderOrNotFound(projectId, environment, secretPath);
        const here = { projectId, environment, path: secretPath };
        checkRead(here);
        const local = folder.secrets.get(key);
        if (local) {
          const raw = rawSecret(key, local, here, hide);
          if (expand) raw.secretValue = expandValue(local.value, here, key);
          return { secret: raw };
        }
        if (query["include_imports"] === "true") {
          const imported = resolveImports(projectId, [folder]).reverse();
          for (const { secrets } of imported) {
            const found = secrets.find((secret) => secret.key === key);
            if (!found) continue;
            const raw = rawSecret(key, found.secret, found.at, hide);
            if (expand) {
              try {
                raw.secretValue = expandValue(found.secret.value, found.at, key);
              } catch {
                // as in the listing: imported values that cannot be expanded stay as they are
              }
            }
            return { secret: raw };
          }
        }
        throw problem(404, `Secret with name '${key}' not found`);
      }
      // POST /api/v4/secrets/{secretName}  body { projectId, environment, secretPath, secretValue,
      // secretComment?, type? } → { secret } (or { approval } under a change policy): secret-router.ts
      // v4 operationId createSecretV4; cf. https://infisical.com/docs/api-reference/endpoints/deprecated/secrets/create
      // PATCH /api/v4/secrets/{secretName}  body { projectId, environment, secretPath, secretValue?, ... }
      // → { secret } (or { approval }): secret-router.ts v4 operationId updateSecretV4. Values are
      // trimmed on create and update as the route schema does.
      if (method === "POST" || method === "PATCH") {
        const projectId = requireString(body, "projectId");
        const environment = requireString(body, "environment");
        authorize(identity, projectId);
        const secretPath = normalizePath(body["secretPath"]);
        const value = body["secretValue"];
        if (method === "POST" && typeof value !== "string")
          throw problem(400, "secretValue: Required");
        const folder = folderOrNotFound(projectId, environment, secretPath);
        const stamp = new Date(now()).toISOString();
        const at = { projectId, environment, path: secretPath };
        if (method === "POST") {
          if (folder.secrets.has(key)) throw problem(400, "Secret already exist");
          const secret = {
            id: randomUUID(),
            value: infisicalValue(value as string),
            comment: typeof body["secretComment"] === "string" ? body["secretComment"] : "",
            version: 1,
            createdAt: stamp,
            updatedAt: stamp,
          };
          folder.secrets.set(key, secret);
          const { secretPath: _p, ...answer } = rawSecret(key, secret, at, false);
          return { secret: answer };
        }
        const secret = folder.secrets.get(key);
        if (!secret) throw problem(404, `Secret with name '${key}' not found`);
        if (typeof value === "string") secret.value = infisicalValue(value);
        secret.version += 1;
        secret.updatedAt = stamp;
        const { secretPath: _p, ...answer } = rawSecret(key, secret, at, false);
        return { secret: answer };
      }
    }

    // GET /api/v2/secret-imports?projectId&environment&path → { secretImports: [{ id, importPath,
    // importEnv: { name, slug, id }, position, folderId, isReplication, isReserved, createdAt,
    // updatedAt, version }] }, the imports attached to that folder in order.
    // https://infisical.com/docs/api-reference/endpoints/secret-imports/list
    if (method === "GET" && path === "/api/v2/secret-imports") {
      const projectId = query["projectId"];
      const environment = query["environment"];
      if (!projectId || !environment) throw problem(400, "Missing project id or environment");
      authorize(identity, projectId);
      const at = normalizePath(query["path"]);
      if (at === "/") folderAt(projectId, environment, "/", true);
      const folder = folderOrNotFound(projectId, environment, at);
      return {
        secretImports: folder.imports.map((entry, index) => ({
          id: `${folder.id}-${index}`,
          importPath: entry.path,
          importEnv: { name: entry.environment, slug: entry.environment, id: entry.environment },
          position: index + 1,
          folderId: folder.id,
          isReplication: false,
          isReserved: false,
          createdAt: folder.createdAt,
          updatedAt: folder.createdAt,
          version: 1,
        })),
      };
    }

    // GET /api/v1/folders?workspaceId (or projectId)&environment&path → { folders: [{ id, name,
    // createdAt, updatedAt, envId, parentId, ... }] }, the folders directly under path; 404 for
    // a missing path. https://infisical.com/docs/api-reference/endpoints/folders/list
    if (method === "GET" && path === "/api/v1/folders") {
      const projectId = query["workspaceId"] ?? query["projectId"];
      const environment = query["environment"];
      if (!projectId || !environment) throw problem(400, "Missing project id or environment");
      authorize(identity, projectId);
      const parent = normalizePath(query["path"] ?? query["directory"]);
      // Every environment has its root folder.
      if (parent === "/") folderAt(projectId, environment, "/", true);
      const folder = folderOrNotFound(projectId, environment, parent);
      const store = stores.get(storeKey(projectId, environment))!;
      return {
        folders: [...store.values()]
          .filter((child) => child.parentId === folder.id)
          .map((child) => ({
            id: child.id,
            name: child.name,
            createdAt: child.createdAt,
            updatedAt: child.createdAt,
            envId: `${projectId}:${environment}`,
            parentId: child.parentId,
            version: 1,
            isReserved: false,
            description: null,
          })),
      };
    }

    // POST /api/v1/folders  body { workspaceId (or projectId), environment, name, path (default "/"),
    // directory? (deprecated) } → { folder: {...} }; a folder that exists answers 200 with that
    // folder (createFolder in backend/src/services/secret-folder/secret-folder-service.ts returns
    // the existing one instead of failing), a bad name answers 400.
    // https://infisical.com/docs/api-reference/endpoints/deprecated/folders/create (v2 with projectId:
    // https://infisical.com/docs/api-reference/endpoints/folders/create). Missing parents are created.
    if (method === "POST" && path === "/api/v1/folders") {
      const projectId =
        typeof body["workspaceId"] === "string"
          ? body["workspaceId"]
          : requireString(body, "projectId");
      const environment = requireString(body, "environment");
      const name = requireString(body, "name");
      authorize(identity, projectId);
      if (name.includes("/")) throw problem(400, "name: Folder name cannot contain /");
      const parent = normalizePath(body["path"] ?? body["directory"]);
      const full = normalizePath(`${parent}/${name}`);
      // "Folder names can only contain alphabets, numbers, and dashes"
      // (https://infisical.com/docs/documentation/platform/folder; the route also takes "_").
      if (!/^[\w-]+$/.test(name))
        throw problem(
          400,
          "name: Folder name can only contain alphanumeric, dashes and underscores",
        );
      const folder = folderAt(projectId, environment, full, true)!;
      return {
        folder: {
          id: folder.id,
          name: folder.name,
          createdAt: folder.createdAt,
          updatedAt: folder.createdAt,
          envId: randomUUID(),
          path: full,
          version: 1,
          parentId: folder.parentId,
          isReserved: false,
          description: null,
          lastSecretModified: null,
        },
      };
    }

    // POST /api/v1/cert-manager/certificates  body { profileId, attributes: { commonName, altNames?,
    // ttl?, keyAlgorithm?, ... } } → { certificate: { certificate, issuingCaCertificate,
    // certificateChain, serialNumber, certificateId, privateKey }, certificateRequestId }
    // https://infisical.com/docs/api-reference/endpoints/certificates/create-certificate
    if (method === "POST" && path === "/api/v1/cert-manager/certificates") {
      const profileId = requireString(body, "profileId");
      const projectId = profiles.get(profileId);
      if (!projectId) throw problem(404, `Certificate profile with ID '${profileId}' not found`);
      authorize(identity, projectId);
      const attributes = body["attributes"];
      if (typeof attributes !== "object" || attributes === null)
        throw problem(400, "attributes: Required");
      const attrs = attributes as Record<string, unknown>;
      const altNames = Array.isArray(attrs["altNames"])
        ? (attrs["altNames"] as Array<{ type: string; value: string }>)
        : [];
      const stamp = new Date(now()).toISOString();
      const request: CertificateRequestRecord = {
        id: randomUUID(),
        profileId,
        attributes: {
          commonName: requireString(attrs, "commonName"),
          altNames,
          ...(typeof attrs["ttl"] === "string" ? { ttl: attrs["ttl"] } : {}),
          ...(typeof attrs["keyAlgorithm"] === "string"
            ? { keyAlgorithm: attrs["keyAlgorithm"] }
            : {}),
        },
        status: "pending_approval",
        createdAt: stamp,
        updatedAt: stamp,
      };
      certificateRequests.set(request.id, request);
      // A profile with an approval policy answers without a certificate:
      // { certificateRequestId, status: "pending_approval", message } (the `certificate`
      // object is optional in the create-certificate response schema, same page).
      if (approvalRequired) {
        return {
          certificateRequestId: request.id,
          status: "pending_approval",
          message: "Certificate request submitted and is pending approval",
        };
      }
      request.issued = await makeCertificate(profileId, request.attributes);
      request.status = "issued";
      return { certificate: request.issued.fields, certificateRequestId: request.id };
    }

    // GET /api/v1/cert-manager/certificates/certificate-requests/{requestId} → { status,
    // certificate, certificateId, privateKey, serialNumber, errorMessage, createdAt, updatedAt,
    // commonName } (nullable until issued).
    // https://infisical.com/docs/api-reference/endpoints/certificates/certificate-request
    const requested = /^\/api\/v1\/cert-manager\/certificates\/certificate-requests\/([^/]+)$/.exec(
      path,
    );
    if (method === "GET" && requested) {
      const request = certificateRequests.get(decodeURIComponent(requested[1]!));
      if (!request) throw problem(404, "Certificate request not found");
      authorize(identity, profiles.get(request.profileId) ?? "");
      const fields = request.issued?.fields;
      return {
        status: request.status,
        certificate: fields?.["certificate"] ?? null,
        certificateId: fields?.["certificateId"] ?? null,
        privateKey: fields?.["privateKey"] ?? null,
        serialNumber: fields?.["serialNumber"] ?? null,
        errorMessage: null,
        createdAt: request.createdAt,
        updatedAt: request.updatedAt,
        commonName: request.attributes.commonName,
      };
    }

    // GET /api/v1/cert-manager/certificates/{id}/bundle → { certificate, certificateChain,
    // privateKey, serialNumber }. https://infisical.com/docs/api-reference/endpoints/certificates/bundle
    const bundle = /^\/api\/v1\/cert-manager\/certificates\/([^/]+)\/bundle$/.exec(path);
    if (method === "GET" && bundle) {
      const id = decodeURIComponent(bundle[1]!);
      const record = certificates.find((entry) => entry.certificateId === id);
      if (!record) throw problem(404, "Certificate not found");
      authorize(identity, profiles.get(record.profileId) ?? "");
      const ca = await readFile(join(certDir!, "ca.pem"), "utf8");
      return {
        certificate: record.certificate,
        certificateChain: ca,
        privateKey: privateKeys.get(id) ?? null,
        serialNumber: new X509Certificate(record.certificate).serialNumber.toLowerCase(),
      };
    }

    // POST /api/v1/cert-manager/certificates/{id}/renew  body { removeRootsFromChain? } →
    // { certificate, issuingCaCertificate, certificateChain, serialNumber, certificateId,
    //   certificateRequestId, privateKey? } (flat; privateKey is optional in the schema: a
    //   certificate renewed for the same key has none).
    //   https://infisical.com/docs/api-reference/endpoints/certificates/renew
    const renew = /^\/api\/v1\/cert-manager\/certificates\/([^/]+)\/renew$/.exec(path);
    if (method === "POST" && renew) {
      const previous = certificates.find(
        (entry) => entry.certificateId === decodeURIComponent(renew[1]!),
      );
      if (!previous) throw problem(404, "Certificate not found");
      authorize(identity, profiles.get(previous.profileId) ?? "");
      const issued = await makeCertificate(
        previous.profileId,
        {
          commonName: previous.commonName,
          altNames: previous.altNames,
          ...(previous.ttl ? { ttl: previous.ttl } : {}),
          ...(previous.keyAlgorithm ? { keyAlgorithm: previous.keyAlgorithm } : {}),
        },
        renewKeyless ? privateKeys.get(previous.certificateId) : undefined,
      );
      issued.record.renewedFrom = previous.certificateId;
      if (renewKeyless) {
        const { privateKey: _key, ...fields } = issued.fields;
        return { ...fields, certificateRequestId: randomUUID() };
      }
      return { ...issued.fields, certificateRequestId: randomUUID() };
    }

    throw problem(404, `Route ${method}:${path} not found`);
  }

  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? "/", "http://127.0.0.1");
    const query = Object.fromEntries(url.searchParams);
    const authorization = request.headers.authorization;
    const bearer = authorization?.startsWith("Bearer ") ? authorization.slice(7) : undefined;
    const entry: FakeRequest = {
      method: request.method ?? "GET",
      path: url.pathname,
      query,
      body: undefined,
      bearer,
      status: 0,
    };
    requests.push(entry);
    const headers: Record<string, string> = {};
    let status = 200;
    let answer: unknown;
    try {
      const text = await readBody(request);
      if (text !== "") {
        try {
          entry.body = JSON.parse(text);
        } catch {
          throw problem(400, "Body is not valid JSON");
        }
      }
      if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
      if (failure && failure.remaining > 0) {
        failure.remaining -= 1;
        throw problem(failure.status, "fake failure");
      }
      // Rate limits (@fastify/rate-limit, backend/src/server/config/rateLimiter.ts): 429 with
      // Retry-After seconds and { statusCode: 429, error: "Too Many Requests", message }.
      // https://infisical.com/docs/api-reference/overview/introduction (rate limits)
      if (limited && limited.remaining > 0) {
        limited.remaining -= 1;
        headers["retry-after"] = String(limited.retryAfter);
        throw problem(429, `Rate limit exceeded, retry in ${limited.retryAfter} seconds`);
      }
      const body =
        typeof entry.body === "object" && entry.body !== null && !Array.isArray(entry.body)
          ? (entry.body as Record<string, unknown>)
          : {};
      answer = await route(entry.method, url.pathname, query, body, bearer);
    } catch (error) {
      // Error body of every route: { reqId, statusCode, message, error }
      // (response schemas 400/401/403/404/422/500 in https://infisical.com/docs/api-reference)
      const known =
        error instanceof HttpProblem
          ? error
          : problem(500, error instanceof Error ? error.message : String(error));
      status = known.status;
      answer = {
        reqId: `req-${randomBytes(6).toString("hex")}`,
        statusCode: known.status,
        message: known.message,
        error: known.error,
        ...(known.details === undefined ? {} : { details: known.details }),
      };
    }
    entry.status = status;
    if (response.destroyed) return;
    response.writeHead(status, { ...headers, "content-type": "application/json; charset=utf-8" });
    response.end(JSON.stringify(answer));
  }

  const server: Server = createServer((request, response) => {
    handle(request, response).catch(() => response.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  let listening = true;

  const fake: FakeInfisical = {
    url: `http://127.0.0.1:${port}`,
    port,
    addUniversalAuth({ clientId, clientSecret, identityId, projects }) {
      const id = identityId ?? randomUUID();
      identities.set(id, {
        identityId: id,
        method: "universal-auth",
        projects,
        clientId,
        clientSecret,
      });
    },
    addIdentity({ method, identityId, projects }) {
      identities.set(identityId, { identityId, method, projects });
    },
    addAwsKey(accessKeyId, secretAccessKey, sessionToken) {
      awsKeys.set(accessKeyId, { secret: secretAccessKey, sessionToken });
    },
    setSecret({ projectId, environment, path, key, value }) {
      const folder = folderAt(projectId, environment, normalizePath(path), true)!;
      const stamp = new Date(now()).toISOString();
      const existing = folder.secrets.get(key);
      if (existing) {
        existing.value = value;
        existing.version += 1;
        existing.updatedAt = stamp;
      } else {
        folder.secrets.set(key, {
          id: randomUUID(),
          value,
          comment: "",
          version: 1,
          createdAt: stamp,
          updatedAt: stamp,
        });
      }
    },
    deleteSecret({ projectId, environment, path, key }) {
      return (
        folderAt(projectId, environment, normalizePath(path), false)?.secrets.delete(key) ?? false
      );
    },
    getSecret({ projectId, environment, path, key }) {
      return folderAt(projectId, environment, normalizePath(path), false)?.secrets.get(key)?.value;
    },
    addFolder({ projectId, environment, path }) {
      folderAt(projectId, environment, normalizePath(path), true);
    },
    folders(projectId, environment) {
      return [...(stores.get(storeKey(projectId, environment))?.keys() ?? [])].sort();
    },
    addImport({ projectId, environment, path, from }) {
      folderAt(projectId, environment, normalizePath(path), true)!.imports.push({
        projectId: from.projectId,
        environment: from.environment,
        path: normalizePath(from.path),
      });
    },
    denyRead({ projectId, environment, path }) {
      denied.add(locationKey(projectId, environment, normalizePath(path)));
    },
    addCertificateProfile({ profileId, projectId }) {
      profiles.set(profileId, projectId);
    },
    certificates,
    issueToken,
    expireTokens() {
      for (const token of tokens.values()) token.expiresAt = 0;
    },
    logins(method) {
      if (method !== undefined) return loginCounts.get(method) ?? 0;
      return [...loginCounts.values()].reduce((sum, count) => sum + count, 0);
    },
    async down() {
      if (!listening) return;
      listening = false;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
    async up() {
      if (listening) return;
      await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
      listening = true;
    },
    slow(ms) {
      delayMs = ms;
    },
    fail5xx(status, times = Number.POSITIVE_INFINITY) {
      failure = status === null ? null : { status, remaining: times };
    },
    rateLimit(times, retryAfterSeconds = 1) {
      limited = times === null ? null : { remaining: times, retryAfter: retryAfterSeconds };
    },
    emptyForMissingFolder(on) {
      emptyForMissing = on;
    },
    requireCertificateApproval(on) {
      approvalRequired = on;
    },
    async approveCertificates() {
      for (const request of certificateRequests.values()) {
        if (request.status !== "pending_approval") continue;
        request.issued = await makeCertificate(request.profileId, request.attributes);
        request.status = "issued";
        request.updatedAt = new Date(now()).toISOString();
      }
    },
    renewWithoutPrivateKey(on) {
      renewKeyless = on;
    },
    requests,
    count(method, pathPrefix) {
      return requests.filter(
        (entry) => entry.method === method && entry.path.startsWith(pathPrefix),
      ).length;
    },
    async stop() {
      await fake.down();
      if (certDir) await rm(certDir, { recursive: true, force: true });
    },
  };
  return fake;
}

/** Options of {@link startFakeCloudMetadata}. */
export interface FakeCloudMetadataOptions {
  /** HS256 key for the GCP/Azure JWTs (give the same to startFakeInfisical). */
  jwtKey: string;
  /** Credentials the ECS endpoint and EC2 IMDS hand out. */
  aws?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string; role?: string };
  /** Authorization value the ECS full-URI endpoint (`/ecs-full/credentials`) demands. */
  ecsAuthorization?: string;
}

/** A running cloud metadata stand-in. */
export interface FakeCloudMetadata {
  url: string;
  /** The ECS relative URI to put in AWS_CONTAINER_CREDENTIALS_RELATIVE_URI. */
  ecsRelativeUri: string;
  requests: Array<{
    method: string;
    path: string;
    headers: Record<string, string | string[] | undefined>;
  }>;
  stop(): Promise<void>;
}

/**
 * One server answering as the AWS EC2 instance metadata service (IMDSv2:
 * https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instancedata-data-retrieval.html),
 * the ECS container credentials endpoint
 * (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-iam-roles.html),
 * the GCP metadata server's identity tokens
 * (https://cloud.google.com/compute/docs/instances/verifying-instance-identity) and Azure
 * IMDS managed-identity tokens
 * (https://learn.microsoft.com/entra/identity/managed-identities-azure-resources/how-to-use-vm-token).
 */
export async function startFakeCloudMetadata(
  options: FakeCloudMetadataOptions,
): Promise<FakeCloudMetadata> {
  const sessions = new Set<string>();
  const requests: FakeCloudMetadata["requests"] = [];
  const role = options.aws?.role ?? "psi-test-role";
  const expiration = () => new Date(Date.now() + 3600_000).toISOString().replace(/\.\d+Z$/, "Z");

  const server = createServer((request, response) => {
    const url = new URL(request.url ?? "/", "http://127.0.0.1");
    requests.push({
      method: request.method ?? "GET",
      path: url.pathname,
      headers: request.headers,
    });
    const send = (status: number, body: string, type = "text/plain") => {
      response.writeHead(status, { "content-type": type });
      response.end(body);
    };
    const aws = options.aws;
    if (request.method === "PUT" && url.pathname === "/latest/api/token") {
      if (!request.headers["x-aws-ec2-metadata-token-ttl-seconds"]) return send(400, "missing ttl");
      const token = randomBytes(16).toString("base64");
      sessions.add(token);
      return send(200, token);
    }
    if (url.pathname.startsWith("/latest/meta-data/iam/security-credentials/")) {
      const token = request.headers["x-aws-ec2-metadata-token"];
      if (typeof token !== "string" || !sessions.has(token)) return send(401, "");
      if (!aws) return send(404, "");
      const name = url.pathname.slice("/latest/meta-data/iam/security-credentials/".length);
      if (name === "") return send(200, `${role}\n`);
      if (decodeURIComponent(name) !== role) return send(404, "");
      return send(
        200,
        JSON.stringify({
          Code: "Success",
          LastUpdated: new Date().toISOString(),
          Type: "AWS-HMAC",
          AccessKeyId: aws.accessKeyId,
          SecretAccessKey: aws.secretAccessKey,
          Token: aws.sessionToken ?? "",
          Expiration: expiration(),
        }),
        "application/json",
      );
    }
    if (url.pathname === "/v2/credentials/psi-test" || url.pathname === "/ecs-full/credentials") {
      if (url.pathname === "/ecs-full/credentials" && options.ecsAuthorization !== undefined) {
        if (request.headers.authorization !== options.ecsAuthorization) return send(401, "");
      }
      if (!aws) return send(404, "");
      return send(
        200,
        JSON.stringify({
          RoleArn: `arn:aws:iam::123456789012:role/${role}`,
          AccessKeyId: aws.accessKeyId,
          SecretAccessKey: aws.secretAccessKey,
          Token: aws.sessionToken ?? "",
          Expiration: expiration(),
        }),
        "application/json",
      );
    }
    if (url.pathname === "/computeMetadata/v1/instance/service-accounts/default/identity") {
      if (request.headers["metadata-flavor"] !== "Google")
        return send(403, "Missing Metadata-Flavor:Google header.");
      const audience = url.searchParams.get("audience");
      if (!audience) return send(400, "non-empty audience parameter required");
      const issued = Math.floor(Date.now() / 1000);
      return send(
        200,
        signFakeJwt(
          {
            aud: audience,
            iss: "https://accounts.google.com",
            sub: "1234567890",
            iat: issued,
            exp: issued + 3600,
          },
          options.jwtKey,
        ),
      );
    }
    if (url.pathname === "/metadata/identity/oauth2/token") {
      if (request.headers["metadata"] !== "true")
        return send(400, JSON.stringify({ error: "invalid_request" }), "application/json");
      const resource = url.searchParams.get("resource") ?? "";
      if (!url.searchParams.get("api-version"))
        return send(400, JSON.stringify({ error: "invalid_request" }), "application/json");
      const issued = Math.floor(Date.now() / 1000);
      return send(
        200,
        JSON.stringify({
          access_token: signFakeJwt(
            {
              aud: resource,
              iss: "https://sts.windows.net/tenant/",
              oid: "principal",
              iat: issued,
              exp: issued + 3600,
            },
            options.jwtKey,
          ),
          expires_in: "3599",
          expires_on: String(issued + 3599),
          resource,
          token_type: "Bearer",
        }),
        "application/json",
      );
    }
    return send(404, "not found");
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    ecsRelativeUri: "/v2/credentials/psi-test",
    requests,
    async stop() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}
