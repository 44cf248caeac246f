import { readFile } from "node:fs/promises";
import { setTimeout as delay } from "node:timers/promises";
import type { AuthConfig, Env, InfisicalConfig, Logger } from "@psi/core";
import { infisicalError } from "./errors.js";
import { createHttp, type FetchFn, type HttpAnswer, type HttpRequest } from "./http.js";
import { buildLoginBody, LOGIN_PATHS } from "./login.js";
import { type RateLimitPolicy, rateLimitWaitMs, retryAfterSeconds } from "./retry.js";
import {
  BatchResponseSchema,
  CertificateBundleResponseSchema,
  CertificateRequestResponseSchema,
  FolderListResponseSchema,
  FolderResponseSchema,
  GetSecretResponseSchema,
  IssueCertificateResponseSchema,
  type IssuedCertificate,
  ListSecretsResponseSchema,
  LoginResponseSchema,
  parseAnswer,
  RenewCertificateResponseSchema,
  SecretImportListResponseSchema,
  WriteSecretResponseSchema,
} from "./schemas.js";
import { tlsFetch } from "./tls-fetch.js";
import { type CachedToken, createTokenFiles, tokenCacheFileName } from "./token-cache.js";

/** Options of {@link createInfisicalClient}: all I/O arrives here. */
export interface InfisicalClientOptions {
  /** `providers.infisical` of the validated configuration. */
  config: InfisicalConfig;
  /** Where token cache files live (`state_dir`). */
  stateDir: string;
  /** Environment for the AWS credential chain (never `process.env` directly). */
  env?: Env;
  /** Home directory for ~/.aws; default `env.HOME`, then the OS's. */
  home?: string;
  logger?: Logger;
  /** Replaces the HTTP transport (tests); then verify_ssl and ca_cert are the caller's business. */
  fetch?: FetchFn;
  /** A CA file to trust when the Infisical block has no ca_cert (the top-level `ca_cert`). */
  caCert?: string | undefined;
  /** Clock in milliseconds (token expiry). */
  now?: () => number;
  /** How a 429 is retried (after `Retry-After`, with jitter, bounded). */
  rateLimit?: RateLimitPolicy;
}

/** Per-call options: `purpose` picks the timeout (lookup_timeout or setup_timeout). */
export interface CallOptions {
  signal?: AbortSignal | undefined;
  purpose?: "lookup" | "setup";
}

/** A secret as a listing yields it, after imports are merged in. */
export interface ListedSecret {
  key: string;
  value: string;
  /** The path a mapping must name so a lookup finds this value (see README, "Imports"). */
  path: string;
  /** Set for secrets that came in through a secret import. */
  importedFrom?: { environment: string; path: string };
}

/** The outcome of a write: done, or waiting in Infisical's approval workflow. */
export type WriteOutcome = "created" | "updated" | "pending_approval";

/** Certificate request attributes (SPEC §12). */
export interface CertificateRequest {
  project: string;
  profileId: string;
  commonName: string;
  altNames?: ReadonlyArray<{ type: string; value: string }>;
  ttl?: string;
  keyAlgorithm?: string;
}

interface ResolvedProject {
  name: string;
  id: string;
  environment: string;
  auth: AuthConfig;
}

const TRUE = "true";

/**
 * The query every secret read sends: values shown, references expanded, imports included.
 * Infisical documents the imports switch as include_imports; includeImports is what SPEC
 * and the reference send. Both go, so either server reading works.
 */
function readQuery(target: ResolvedProject, secretPath: string): Record<string, string> {
  return {
    projectId: target.id,
    environment: target.environment,
    secretPath,
    viewSecretValue: TRUE,
    expandSecretReferences: TRUE,
    include_imports: TRUE,
    includeImports: TRUE,
  };
}

/** Normalizes an Infisical folder path: leading "/", no trailing "/" (root stays "/"). */
export function normalizeSecretPath(path: string): string {
  const trimmed = `/${path.trim()}`.replace(/\/+/g, "/");
  return trimmed.length > 1 ? trimmed.replace(/\/$/, "") : "/";
}

/**
 * The Infisical REST client (SPEC §8.1, §12): per-project auth with a token cache, secrets
 * (list with imports, get, create, update, batch), folders and PKI certificates. Every
 * request is bounded by a timeout; errors are PsiErrors with stable codes.
 */
export function createInfisicalClient(options: InfisicalClientOptions) {
  const { config } = options;
  const env = options.env ?? {};
  const now = options.now ?? Date.now;
  const logger = options.logger;
  const apiUrl = config.api_url.replace(/\/+$/, "");
  const sendOnce = createHttp({
    baseUrl: apiUrl,
    service: "Infisical",
    // SSL_CERT_FILE last: the reference's HTTP client (httpx) trusted it, and its container
    // instructions pass it; Node's TLS ignores it unless told.
    fetch:
      options.fetch ??
      configuredFetch(config.verify_ssl, config.ca_cert ?? options.caCert ?? env["SSL_CERT_FILE"]),
  });

  /**
   * Sends a request; a 429 is sent again after its `Retry-After` plus jitter, a bounded
   * number of times, and only while the wait is short enough for the call's purpose (a
   * lookup holds a container start). The last answer is returned, whatever it is.
   */
  async function send(request: HttpRequest, call: CallOptions = {}): Promise<HttpAnswer> {
    const policy = options.rateLimit ?? {};
    const retries = policy.retries ?? 3;
    const maxWait = policy.maxWaitSeconds ?? (call.purpose === "lookup" ? 2 : 30);
    for (let attempt = 0; ; attempt++) {
      const answer = await sendOnce(request);
      if (answer.status !== 429 || attempt >= retries) return answer;
      const wait = rateLimitWaitMs(
        retryAfterSeconds(answer.retryAfter, now()),
        maxWait,
        policy.random,
      );
      if (wait === undefined) return answer;
      logger?.warn(
        `Infisical is rate-limiting ${request.method} ${request.url}; retrying in ${wait / 1000} s`,
        { event: "infisical.rate_limited", attempt: attempt + 1, wait_ms: wait },
      );
      await delay(wait, undefined, call.signal ? { signal: call.signal } : undefined);
    }
  }
  const files = createTokenFiles({ stateDir: options.stateDir, logger });
  const memory = new Map<string, CachedToken>();
  const inflight = new Map<string, Promise<CachedToken>>();

  const timeoutMs = (call: CallOptions) =>
    (call.purpose === "lookup" ? config.lookup_timeout : config.setup_timeout) * 1000;

  function project(name: string): ResolvedProject {
    const entry = Object.hasOwn(config.projects, name) ? config.projects[name] : undefined;
    if (!entry) {
      const known = Object.keys(config.projects);
      throw infisicalError(
        "provider.unknown_project",
        `Infisical project ${JSON.stringify(name)} is not configured`,
        {
          hint: known.length
            ? `add it under providers.infisical.projects (configured: ${known.join(", ")})`
            : "add it under providers.infisical.projects",
        },
      );
    }
    const auth = entry.auth ?? config.auth;
    if (!auth) {
      throw infisicalError(
        "provider.not_configured",
        `Infisical project ${name} has no auth and there is no global auth`,
        {
          hint: "set providers.infisical.auth or providers.infisical.projects." + name + ".auth",
        },
      );
    }
    return { name, id: entry.id, environment: entry.environment, auth };
  }

  const isFresh = (token: CachedToken | undefined): token is CachedToken =>
    token !== undefined && now() / 1000 < token.expiresAt;

  function shortBody(body: string): string {
    return body.slice(0, 200);
  }

  async function login(target: ResolvedProject, call: CallOptions): Promise<CachedToken> {
    const method = target.auth.method;
    const body = await buildLoginBody(target.auth, {
      config,
      env,
      home: options.home,
      timeoutMs: timeoutMs(call),
      signal: call.signal,
      fetch: options.fetch,
      logger,
    }).catch((error: unknown) => {
      if (error instanceof Error && "code" in error && error.code === "provider.cloud_identity") {
        throw infisicalError(
          "provider.auth_failed",
          `auth failed for project ${target.name}: ${error.message}`,
          {
            cause: error,
            hint: (error as { hint?: string }).hint ?? "check the machine's cloud identity",
          },
        );
      }
      throw error;
    });
    const answer = await send(
      {
        method: "POST",
        url: `/api/v1/auth/${LOGIN_PATHS[method]}/login`,
        body,
        timeoutMs: timeoutMs(call),
        signal: call.signal,
      },
      call,
    );
    if (answer.status === 429)
      throw rateLimited(answer, "POST", `/api/v1/auth/${LOGIN_PATHS[method]}/login`);
    if (answer.status < 200 || answer.status >= 300) {
      if ([400, 401, 403, 404].includes(answer.status)) {
        throw infisicalError(
          "provider.auth_failed",
          `auth failed for project ${target.name}: Infisical refused the ${method} login (HTTP ${answer.status}: ${shortBody(answer.body)})`,
          {
            status: answer.status,
            hint: `check the ${method} credentials of project ${target.name} and the machine identity in Infisical`,
          },
        );
      }
      throw httpError(answer, "POST", `/api/v1/auth/${LOGIN_PATHS[method]}/login`);
    }
    const parsed = parseAnswer(LoginResponseSchema, answer.body, `the ${method} login`);
    const ttl = Math.min(parsed.expiresIn, config.token.ttl);
    const token = { accessToken: parsed.accessToken, expiresAt: now() / 1000 + ttl };
    logger?.debug("logged in to Infisical", {
      event: "infisical.login",
      project: target.name,
      method,
      ttl,
    });
    await files.write(target.auth, token);
    return token;
  }

  /** The cached token for the project's auth, logging in (once, shared) when needed. */
  async function tokenFor(
    target: ResolvedProject,
    call: CallOptions,
    stale?: string,
  ): Promise<string> {
    const key = tokenCacheFileName(target.auth);
    const running = inflight.get(key);
    if (running) return (await running).accessToken;
    const cached = memory.get(key);
    if (isFresh(cached) && cached.accessToken !== stale) return cached.accessToken;
    const pending = (async () => {
      if (stale === undefined) {
        const onDisk = await files.read(target.auth);
        if (isFresh(onDisk)) return onDisk;
      } else {
        memory.delete(key);
        await files.remove(target.auth);
      }
      return login(target, call);
    })();
    inflight.set(key, pending);
    try {
      const token = await pending;
      memory.set(key, token);
      return token.accessToken;
    } finally {
      inflight.delete(key);
    }
  }

  function rateLimited(answer: HttpAnswer, method: string, path: string) {
    const after = retryAfterSeconds(answer.retryAfter, now());
    return infisicalError(
      "provider.rate_limited",
      `Infisical is rate-limiting ${method} ${path} (HTTP 429${after === undefined ? "" : `, retry after ${after} s`})`,
      {
        status: 429,
        hint: "too many requests from this host or fleet: PSI retried after Retry-After; spread the runs (refresh_randomized_delay) or raise the rate limit in Infisical",
      },
    );
  }

  /**
   * Infisical's answer when `expandSecretReferences` meets a reference it cannot expand
   * (the identity may not read the referenced folder): 403 with "... which is referenced by
   * secret ..." (get) or "Failed to expand one or more secret references" and `details`
   * (list). Undefined for any other answer.
   */
  function unexpandable(answer: HttpAnswer, target: ResolvedProject, method: string, path: string) {
    if (answer.status !== 403) return undefined;
    let body: { message?: unknown; details?: unknown } = {};
    try {
      body = JSON.parse(answer.body) as typeof body;
    } catch {
      return undefined;
    }
    const message = typeof body.message === "string" ? body.message : "";
    if (!/referenced by secret|expand one or more secret references/.test(message))
      return undefined;
    const details = Array.isArray(body.details)
      ? body.details.filter((item): item is string => typeof item === "string")
      : [];
    const why = (details.length > 0 ? details.join("; ") : message).slice(0, 400);
    return infisicalError(
      "provider.reference_unexpandable",
      `Infisical cannot expand a secret reference for ${method} ${path} in project ${target.name}: ${why}`,
      {
        status: 403,
        hint: `give the machine identity of project ${target.name} read access to the folder the reference points at, or fix the \${...} reference in Infisical`,
      },
    );
  }

  function httpError(answer: HttpAnswer, method: string, path: string) {
    return infisicalError(
      answer.status === 404 ? "provider.not_found" : "provider.http_error",
      `Infisical answered HTTP ${answer.status} to ${method} ${path}: ${shortBody(answer.body)}`,
      {
        status: answer.status,
        hint: answer.status >= 500 ? "Infisical has a problem; setup retries 502/503" : undefined,
      },
    );
  }

  /** Sends an authenticated request; a 401 logs in once more and repeats it. */
  /**
   * Sends `request` with the project's bearer token and the call's timeout and signal; a
   * 401 (a token Infisical no longer accepts) logs in again once and repeats it.
   */
  async function authed(
    target: ResolvedProject,
    call: CallOptions,
    request: Omit<HttpRequest, "headers" | "timeoutMs" | "signal">,
  ): Promise<HttpAnswer> {
    const build = (token: string): HttpRequest => ({
      ...request,
      headers: bearer(token),
      timeoutMs: timeoutMs(call),
      signal: call.signal,
    });
    const token = await tokenFor(target, call);
    const answer = await send(build(token), call);
    if (answer.status !== 401) return answer;
    logger?.debug("Infisical refused a cached token; logging in again", {
      event: "infisical.login",
      project: target.name,
    });
    return send(build(await tokenFor(target, call, token)), call);
  }

  /** Throws the SPEC §8.1 error for a non-2xx answer. */
  function judge(
    answer: HttpAnswer,
    target: ResolvedProject,
    method: string,
    path: string,
    notFound?: string,
  ): void {
    if (answer.status >= 200 && answer.status < 300) return;
    if (answer.status === 429) throw rateLimited(answer, method, path);
    const reference = unexpandable(answer, target, method, path);
    if (reference) throw reference;
    if (answer.status === 401 || answer.status === 403) {
      throw infisicalError(
        "provider.auth_failed",
        `auth failed for project ${target.name}: Infisical answered HTTP ${answer.status} to ${method} ${path}`,
        {
          status: answer.status,
          hint: `give the machine identity of project ${target.name} access to ${target.environment} in Infisical`,
        },
      );
    }
    if (answer.status === 404 && notFound) {
      throw infisicalError("provider.not_found", notFound, {
        status: 404,
        hint: "check the key, the path and the project's environment",
      });
    }
    throw httpError(answer, method, path);
  }

  const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });

  /**
   * Where the imports of a recursive listing at `root` are attached: for each imported
   * `environment\0path`, the folders of the tree importing it, shallowest first. Walks
   * the tree (`GET /api/v1/folders`) and reads each folder's imports
   * (`GET /api/v2/secret-imports`); only recursive listings with imports pay for this.
   */
  async function importAttachments(
    target: ResolvedProject,
    root: string,
    call: CallOptions,
  ): Promise<Map<string, string[]>> {
    const attached = new Map<string, string[]>();
    const get = async (url: string, query: Record<string, string>) => {
      const answer = await authed(target, call, {
        method: "GET",
        url,
        query,
      });
      judge(
        answer,
        target,
        "GET",
        url,
        `folder ${query["path"]} not found in project ${target.name}`,
      );
      return answer.body;
    };
    const scope = { projectId: target.id, environment: target.environment };
    let level = [root];
    while (level.length > 0) {
      const next: string[] = [];
      for (const folder of level) {
        const [children, imports] = await Promise.all([
          get("/api/v1/folders", { ...scope, workspaceId: target.id, path: folder }),
          get("/api/v2/secret-imports", { ...scope, path: folder }),
        ]);
        for (const child of parseAnswer(FolderListResponseSchema, children, "GET /api/v1/folders")
          .folders)
          next.push(normalizeSecretPath(`${folder}/${child.name}`));
        const listed = parseAnswer(
          SecretImportListResponseSchema,
          imports,
          "GET /api/v2/secret-imports",
        );
        for (const entry of listed.secretImports) {
          const id = `${entry.importEnv.slug}\u0000${normalizeSecretPath(entry.importPath)}`;
          if (!attached.has(id)) attached.set(id, []);
          attached.get(id)!.push(folder);
        }
      }
      level = next.sort();
    }
    return attached;
  }

  const client = {
    /** Logs in for `projectName` now (ignoring caches) and caches the token. */
    async login(projectName: string, call: CallOptions = {}): Promise<{ expiresAt: number }> {
      const target = project(projectName);
      const key = tokenCacheFileName(target.auth);
      const token = await login(target, call);
      memory.set(key, token);
      return { expiresAt: token.expiresAt };
    },

    /** A valid access token for the project (cached, or a fresh login). */
    async token(projectName: string, call: CallOptions = {}): Promise<string> {
      return tokenFor(project(projectName), call);
    },

    /**
     * Lists the secrets at `path` (recursively when asked), imports included. Local keys win
     * over imported ones; among imports the later one wins (Infisical's own order); among
     * local secrets of a recursive listing the later one in Infisical's answer wins.
     */
    async listSecrets(
      request: { project: string; path: string; recursive?: boolean },
      call: CallOptions = {},
    ): Promise<ListedSecret[]> {
      const target = project(request.project);
      const secretPath = normalizeSecretPath(request.path);
      const apiPath = "/api/v4/secrets";
      const answer = await authed(target, call, {
        method: "GET",
        url: apiPath,
        query: {
          ...readQuery(target, secretPath),
          recursive: request.recursive ? TRUE : "false",
        },
      });
      judge(answer, target, "GET", apiPath);
      const parsed = parseAnswer(ListSecretsResponseSchema, answer.body, `GET ${apiPath}`);
      const merged = new Map<string, ListedSecret>();
      // Local keys per folder: an import attached to a folder that has the key itself is
      // shadowed there (a lookup at that folder answers the local value).
      const locals = new Map<string, Set<string>>();
      for (const secret of parsed.secrets) {
        if (secret.secretValueHidden === true)
          throw hidden(secret.secretKey, secret.secretPath ?? secretPath, target);
        const path = normalizeSecretPath(secret.secretPath ?? secretPath);
        merged.set(secret.secretKey, { key: secret.secretKey, value: secret.secretValue, path });
        if (!locals.has(path)) locals.set(path, new Set());
        locals.get(path)!.add(secret.secretKey);
      }
      const imports = parsed.imports ?? [];
      // A lookup finds an imported secret at the folder the import is attached to (through
      // include_imports, which follows imports of imports and cross-project imports too).
      // A plain listing is of that folder. A recursive one returns the imports of every
      // folder of the tree without saying whose they are: ask Infisical where each is
      // attached. Where that finds nothing, a same-environment import keeps its own path
      // (its secrets are usually there) and any other the listed one; a lookup there may
      // miss, and the value setup cached answers (README, "Imports").
      const attached =
        request.recursive && imports.length > 0
          ? await importAttachments(target, secretPath, call)
          : undefined;
      for (let index = imports.length - 1; index >= 0; index--) {
        const source = imports[index]!;
        const from = normalizeSecretPath(source.secretPath);
        const folders = attached?.get(`${source.environment}\u0000${from}`);
        for (const secret of source.secrets) {
          if (merged.has(secret.secretKey)) continue;
          const path = !attached
            ? secretPath
            : (folders?.find((folder) => !locals.get(folder)?.has(secret.secretKey)) ??
              (source.environment === target.environment ? from : secretPath));
          if (secret.secretValueHidden === true)
            throw hidden(secret.secretKey, source.secretPath, target);
          merged.set(secret.secretKey, {
            key: secret.secretKey,
            value: secret.secretValue,
            path,
            importedFrom: {
              environment: source.environment,
              path: normalizeSecretPath(source.secretPath),
            },
          });
        }
      }
      return [...merged.values()];
    },

    /** The value of one secret (imports of the folder included). */
    async getSecret(
      request: { project: string; path: string; key: string },
      call: CallOptions = {},
    ): Promise<string> {
      const target = project(request.project);
      const secretPath = normalizeSecretPath(request.path);
      const apiPath = `/api/v4/secrets/${encodeURIComponent(request.key)}`;
      const answer = await authed(target, call, {
        method: "GET",
        url: apiPath,
        query: readQuery(target, secretPath),
      });
      judge(
        answer,
        target,
        "GET",
        "/api/v4/secrets/{key}",
        `secret ${request.key} not found at path ${secretPath} in project ${target.name}`,
      );
      const parsed = parseAnswer(GetSecretResponseSchema, answer.body, "GET /api/v4/secrets/{key}");
      if (parsed.secret.secretValueHidden === true) throw hidden(request.key, secretPath, target);
      return parsed.secret.secretValue;
    },

    /** Creates one secret (`POST /api/v4/secrets/{key}`); an existing key is an HTTP error. */
    async createSecret(
      request: { project: string; path: string; key: string; value: string; comment?: string },
      call: CallOptions = {},
    ): Promise<WriteOutcome> {
      const target = project(request.project);
      const answer = await authed(target, call, {
        method: "POST",
        url: `/api/v4/secrets/${encodeURIComponent(request.key)}`,
        body: {
          projectId: target.id,
          environment: target.environment,
          secretPath: normalizeSecretPath(request.path),
          secretValue: request.value,
          secretComment: request.comment ?? "",
          type: "shared",
        },
      });
      judge(answer, target, "POST", "/api/v4/secrets/{key}");
      const parsed = parseAnswer(
        WriteSecretResponseSchema,
        answer.body,
        "POST /api/v4/secrets/{key}",
      );
      return "approval" in parsed ? "pending_approval" : "created";
    },

    /** Changes the value of one secret (`PATCH /api/v4/secrets/{key}`). */
    async updateSecret(
      request: { project: string; path: string; key: string; value: string },
      call: CallOptions = {},
    ): Promise<WriteOutcome> {
      const target = project(request.project);
      const secretPath = normalizeSecretPath(request.path);
      const answer = await authed(target, call, {
        method: "PATCH",
        url: `/api/v4/secrets/${encodeURIComponent(request.key)}`,
        body: {
          projectId: target.id,
          environment: target.environment,
          secretPath,
          secretValue: request.value,
          type: "shared",
        },
      });
      judge(
        answer,
        target,
        "PATCH",
        "/api/v4/secrets/{key}",
        `secret ${request.key} not found at path ${secretPath} in project ${target.name}`,
      );
      const parsed = parseAnswer(
        WriteSecretResponseSchema,
        answer.body,
        "PATCH /api/v4/secrets/{key}",
      );
      return "approval" in parsed ? "pending_approval" : "updated";
    },

    /** Creates several secrets in one folder (`POST /api/v4/secrets/batch`), all or none. */
    async createSecrets(
      request: {
        project: string;
        path: string;
        secrets: ReadonlyArray<{ key: string; value: string; comment?: string }>;
      },
      call: CallOptions = {},
    ): Promise<WriteOutcome> {
      const target = project(request.project);
      const answer = await authed(target, call, {
        method: "POST",
        url: "/api/v4/secrets/batch",
        body: {
          projectId: target.id,
          environment: target.environment,
          secretPath: normalizeSecretPath(request.path),
          secrets: request.secrets.map((secret) => ({
            secretKey: secret.key,
            secretValue: secret.value,
            secretComment: secret.comment ?? "",
          })),
        },
      });
      judge(answer, target, "POST", "/api/v4/secrets/batch");
      const parsed = parseAnswer(BatchResponseSchema, answer.body, "POST /api/v4/secrets/batch");
      return "approval" in parsed ? "pending_approval" : "created";
    },

    /**
     * Creates folder `name` under `path` unless it exists (`created: false`). Infisical
     * answers a create of an existing folder with 200 and that folder, so the parent is
     * listed first to tell the two apart; `parentIsNew` (the parent was just created)
     * skips the listing. A 400 is a real validation error and is thrown with Infisical's
     * message.
     */
    async createFolder(
      request: { project: string; path: string; name: string; parentIsNew?: boolean },
      call: CallOptions = {},
    ): Promise<{ created: boolean }> {
      const target = project(request.project);
      const parent = normalizeSecretPath(request.path);
      if (!request.parentIsNew) {
        const listed = await authed(target, call, {
          method: "GET",
          url: "/api/v1/folders",
          query: {
            workspaceId: target.id,
            projectId: target.id,
            environment: target.environment,
            path: parent,
          },
        });
        judge(
          listed,
          target,
          "GET",
          "/api/v1/folders",
          `folder ${parent} not found in project ${target.name}`,
        );
        const { folders } = parseAnswer(
          FolderListResponseSchema,
          listed.body,
          "GET /api/v1/folders",
        );
        if (folders.some((folder) => folder.name === request.name)) return { created: false };
      }
      const answer = await authed(target, call, {
        method: "POST",
        url: "/api/v1/folders",
        body: {
          name: request.name,
          path: parent,
          projectId: target.id,
          workspaceId: target.id,
          environment: target.environment,
        },
      });
      if (answer.status === 400) {
        throw infisicalError(
          "provider.http_error",
          `Infisical refused folder ${JSON.stringify(request.name)} under ${parent} in project ${target.name}: ${errorText(answer.body)}`,
          {
            status: 400,
            hint: "folder names may hold letters, digits, dashes and underscores; check the path",
          },
        );
      }
      judge(answer, target, "POST", "/api/v1/folders");
      parseAnswer(FolderResponseSchema, answer.body, "POST /api/v1/folders");
      return { created: true };
    },

    /** Creates every missing folder of `path`, parent first; returns the folders created. */
    async ensureFolderPath(
      request: { project: string; path: string },
      call: CallOptions = {},
    ): Promise<string[]> {
      const parts = normalizeSecretPath(request.path).split("/").filter(Boolean);
      const created: string[] = [];
      let parentIsNew = false;
      for (let depth = 0; depth < parts.length; depth++) {
        const parent = `/${parts.slice(0, depth).join("/")}`;
        const result = await client.createFolder(
          { project: request.project, path: parent, name: parts[depth]!, parentIsNew },
          call,
        );
        parentIsNew = result.created;
        if (result.created) created.push(normalizeSecretPath(`${parent}/${parts[depth]}`));
      }
      return created;
    },

    /** Issues a certificate from a profile; a request waiting for approval is an error. */
    async issueCertificate(
      request: CertificateRequest,
      call: CallOptions = {},
    ): Promise<IssuedCertificate> {
      const answer = await client.requestCertificate(request, call);
      if ("certificate" in answer) return answer.certificate;
      throw infisicalError(
        "provider.pending_approval",
        `the certificate request for ${request.commonName} is ${answer.status} in Infisical (request ${answer.requestId})`,
        { hint: "approve the request in Infisical, then run the command again" },
      );
    },

    /**
     * Requests a certificate from a profile (`POST /api/v1/cert-manager/certificates`): the
     * certificate, or — under an approval policy — the request id and its status.
     */
    async requestCertificate(
      request: CertificateRequest,
      call: CallOptions = {},
    ): Promise<{ certificate: IssuedCertificate } | { requestId: string; status: string }> {
      const target = project(request.project);
      const attributes: Record<string, unknown> = { commonName: request.commonName };
      if (request.altNames && request.altNames.length > 0)
        attributes["altNames"] = request.altNames;
      if (request.ttl) attributes["ttl"] = request.ttl;
      if (request.keyAlgorithm) attributes["keyAlgorithm"] = request.keyAlgorithm;
      const apiPath = "/api/v1/cert-manager/certificates";
      const answer = await authed(target, call, {
        method: "POST",
        url: apiPath,
        body: { profileId: request.profileId, attributes },
      });
      judge(answer, target, "POST", apiPath);
      const parsed = parseAnswer(IssueCertificateResponseSchema, answer.body, `POST ${apiPath}`);
      if (parsed.certificate) return { certificate: parsed.certificate };
      if (!parsed.certificateRequestId) {
        throw infisicalError(
          "provider.bad_response",
          `Infisical answered POST ${apiPath} with neither a certificate nor a request id`,
          { hint: "check that api_url points at a supported Infisical version" },
        );
      }
      return { requestId: parsed.certificateRequestId, status: parsed.status ?? "pending" };
    },

    /**
     * A certificate request's status (`GET .../certificates/certificate-requests/{id}`) and,
     * once issued, the certificate with its chain and key (`GET .../certificates/{id}/bundle`).
     */
    async certificateRequest(
      request: { project: string; requestId: string },
      call: CallOptions = {},
    ): Promise<{ status: string; certificate?: IssuedCertificate; error?: string }> {
      const target = project(request.project);
      const statusPath = "/api/v1/cert-manager/certificates/certificate-requests/{id}";
      const answer = await authed(target, call, {
        method: "GET",
        url: `/api/v1/cert-manager/certificates/certificate-requests/${encodeURIComponent(request.requestId)}`,
      });
      judge(
        answer,
        target,
        "GET",
        statusPath,
        `certificate request ${request.requestId} not found in project ${target.name}`,
      );
      const state = parseAnswer(CertificateRequestResponseSchema, answer.body, `GET ${statusPath}`);
      if (state.status !== "issued" || !state.certificateId) {
        return {
          status: state.status,
          ...(state.errorMessage ? { error: state.errorMessage } : {}),
        };
      }
      const bundlePath = "/api/v1/cert-manager/certificates/{id}/bundle";
      const bundle = await authed(target, call, {
        method: "GET",
        url: `/api/v1/cert-manager/certificates/${encodeURIComponent(state.certificateId!)}/bundle`,
      });
      judge(bundle, target, "GET", bundlePath);
      const parsed = parseAnswer(CertificateBundleResponseSchema, bundle.body, `GET ${bundlePath}`);
      const chain = parsed.certificateChain ?? "";
      // The bundle has no issuingCaCertificate: it is the first certificate of the chain.
      const issuing = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----\n?/.exec(chain);
      return {
        status: state.status,
        certificate: {
          certificate: parsed.certificate,
          certificateChain: chain,
          issuingCaCertificate: issuing?.[0] ?? "",
          serialNumber: parsed.serialNumber,
          certificateId: state.certificateId,
          ...(parsed.privateKey ? { privateKey: parsed.privateKey } : {}),
        },
      };
    },

    /** Renews a certificate (`POST /api/v1/cert-manager/certificates/{id}/renew`). */
    async renewCertificate(
      request: { project: string; certificateId: string },
      call: CallOptions = {},
    ): Promise<IssuedCertificate> {
      const target = project(request.project);
      const apiPath = "/api/v1/cert-manager/certificates/{id}/renew";
      const answer = await authed(target, call, {
        method: "POST",
        url: `/api/v1/cert-manager/certificates/${encodeURIComponent(request.certificateId)}/renew`,
        body: {},
      });
      judge(
        answer,
        target,
        "POST",
        apiPath,
        `certificate ${request.certificateId} not found in project ${target.name}`,
      );
      const parsed = parseAnswer(RenewCertificateResponseSchema, answer.body, `POST ${apiPath}`);
      return "certificateId" in parsed ? parsed : parsed.certificate;
    },

    /** The configured project: Infisical id, environment slug, effective auth method. */
    project(projectName: string): {
      id: string;
      environment: string;
      method: AuthConfig["method"];
    } {
      const target = project(projectName);
      return { id: target.id, environment: target.environment, method: target.auth.method };
    },

    /** Forgets in-memory tokens (files stay). */
    reset(): void {
      memory.clear();
    },
  };
  return client;
}

/** The transport for verify_ssl/ca_cert; undefined keeps Node's fetch and its default trust. */
function configuredFetch(verify: boolean, caFile: string | undefined): FetchFn | undefined {
  if (verify && !caFile) return undefined;
  let ready: Promise<FetchFn> | undefined;
  return async (input, init) => {
    ready ??= (async () => {
      let ca: string | undefined;
      if (caFile) {
        try {
          ca = await readFile(caFile, "utf8");
        } catch (error) {
          throw infisicalError("provider.not_configured", `cannot read ca_cert ${caFile}`, {
            cause: error,
            hint: "point providers.infisical.ca_cert (or ca_cert) at a readable PEM file",
          });
        }
      }
      return tlsFetch({ verify, ca });
    })();
    return (await ready)(input, init);
  };
}

/** Infisical's error `message` (its error body is `{ reqId, statusCode, message, error }`), else the body's start. */
function errorText(body: string): string {
  try {
    const parsed = JSON.parse(body) as { message?: unknown };
    if (typeof parsed.message === "string") return parsed.message.slice(0, 200);
  } catch {
    // not JSON: the raw start below
  }
  return body.slice(0, 200);
}

function hidden(key: string, path: string, target: ResolvedProject) {
  return infisicalError(
    "provider.value_hidden",
    `secret ${key} at path ${normalizeSecretPath(path)} in project ${target.name} is hidden from this machine identity`,
    { hint: "give the machine identity permission to read secret values in Infisical" },
  );
}

/** The client {@link createInfisicalClient} returns. */
export type InfisicalClient = ReturnType<typeof createInfisicalClient>;
