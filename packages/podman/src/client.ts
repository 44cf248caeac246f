import { createRequire } from "node:module";
import { PsiError } from "@psi/core";

// Node 24's ESM facade for node:http reads every export, and three of them are getters
// that load undici (~30 ms on every psi start); require() keeps them lazy.
const { request } = createRequire(import.meta.url)("node:http") as typeof import("node:http");

/** The libpod API prefix PSI talks to (Podman 4.x accepts any version in the path). */
export const PODMAN_API_PREFIX = "/v5.0.0/libpod";

/** A Podman secret as `GET /libpod/secrets/json` reports it. */
export interface PodmanSecret {
  /** Podman's hex secret ID: the `SECRET_ID` the shell driver receives. */
  id: string;
  name: string;
  /** Driver name: `shell`, `file`, `pass`. */
  driver: string;
  /** Driver options as Podman recorded them (for `shell`: the store/lookup/delete/list commands). */
  driverOptions: Record<string, string>;
  labels: Record<string, string>;
  createdAt: string | undefined;
  updatedAt: string | undefined;
}

/** Options for {@link createPodmanClient}. */
export interface PodmanClientOptions {
  /** Path of Podman's API socket (see `podmanSocketPath`). */
  socketPath: string;
  /** Per-request timeout in milliseconds (default 30 000). */
  timeoutMs?: number;
  /** The scope, only to phrase the "start podman.socket" hint (`systemctl --user` for user). */
  scope?: "system" | "user";
}

/** Per-call options. */
export interface PodmanCallOptions {
  signal?: AbortSignal;
}

/** Options for {@link PodmanClient.createSecret}. */
export interface CreateSecretOptions extends PodmanCallOptions {
  /** Secret driver (default `shell`: Podman hands the data to the configured store command). */
  driver?: string;
  /** Driver options; for `shell`, unset means the commands from containers.conf. */
  driverOptions?: Record<string, string>;
  labels?: Record<string, string>;
}

/** The secrets part of Podman's REST API, enough for `psi setup` and `psi local store`. */
export interface PodmanClient {
  readonly socketPath: string;
  /** Checks that the API answers (`GET /_ping`). */
  ping(options?: PodmanCallOptions): Promise<void>;
  /** Creates secret `name` with `data` as its value (for `shell`: the mapping bytes); returns its ID. */
  createSecret(
    name: string,
    data: Uint8Array,
    options?: CreateSecretOptions,
  ): Promise<{ id: string }>;
  /** Deletes secret `name` (name or ID); false when there was none (404 is fine). */
  deleteSecret(name: string, options?: PodmanCallOptions): Promise<boolean>;
  /** Deletes `name` if present, then creates it: how setup (re)registers a secret. */
  replaceSecret(
    name: string,
    data: Uint8Array,
    options?: CreateSecretOptions,
  ): Promise<{ id: string }>;
  /** Every secret Podman knows, any driver, in Podman's order. */
  listSecrets(options?: PodmanCallOptions): Promise<PodmanSecret[]>;
  /** One secret by name or ID; undefined when there is none. */
  inspectSecret(name: string, options?: PodmanCallOptions): Promise<PodmanSecret | undefined>;
}

interface RawResponse {
  status: number;
  body: Buffer;
}

/** Builds a client for the Podman API socket at `options.socketPath` (node:http, no dependency). */
export function createPodmanClient(options: PodmanClientOptions): PodmanClient {
  const socketPath = options.socketPath;
  const timeoutMs = options.timeoutMs ?? 30_000;
  const userFlag = options.scope === "user" ? "--user " : "";

  function send(
    method: string,
    path: string,
    body: Uint8Array | undefined,
    signal: AbortSignal | undefined,
  ): Promise<RawResponse> {
    const timeout = AbortSignal.timeout(timeoutMs);
    const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
    return new Promise<RawResponse>((resolve, reject) => {
      const headers: Record<string, string | number> = { Host: "d", Accept: "application/json" };
      if (body !== undefined) {
        // Podman 4.3 reads a form-encoded body as a form and then finds the secret empty.
        headers["Content-Type"] = "application/octet-stream";
        headers["Content-Length"] = body.byteLength;
      }
      const req = request({ socketPath, method, path, headers, signal: combined }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
        res.on("error", reject);
      });
      req.on("error", (error: NodeJS.ErrnoException) => {
        reject(connectionError(error, method, path, combined, timeout));
      });
      req.end(
        body === undefined ? undefined : Buffer.from(body.buffer, body.byteOffset, body.byteLength),
      );
    });
  }

  function connectionError(
    error: NodeJS.ErrnoException,
    method: string,
    path: string,
    combined: AbortSignal,
    timeout: AbortSignal,
  ): PsiError {
    if (timeout.aborted) {
      return new PsiError(
        "podman.timeout",
        `Podman API at ${socketPath} did not answer ${method} ${path} within ${timeoutMs} ms`,
        { cause: error, hint: "check that the Podman service is healthy (podman system service)" },
      );
    }
    if (combined.aborted) {
      return new PsiError("podman.aborted", `${method} ${path} on the Podman API was cancelled`, {
        cause: error,
      });
    }
    if (error.code === "ENOENT" || error.code === "ECONNREFUSED") {
      return new PsiError(
        "podman.unreachable",
        `cannot reach the Podman API: no service listens on ${socketPath}`,
        {
          cause: error,
          hint:
            `start it with \`systemctl ${userFlag}enable --now podman.socket\` ` +
            "(or `podman system service --time=0 unix://PATH`), " +
            "or point PSI elsewhere with --podman-socket PATH / PSI_PODMAN_SOCKET",
        },
      );
    }
    if (error.code === "EACCES") {
      return new PsiError(
        "podman.unreachable",
        `no permission to connect to the Podman API socket ${socketPath}`,
        {
          cause: error,
          hint: "run as the user that owns the socket (root for /run/podman/podman.sock)",
        },
      );
    }
    return new PsiError(
      "podman.unreachable",
      `cannot reach the Podman API at ${socketPath}: ${error.message}`,
      {
        cause: error,
      },
    );
  }

  async function call(
    method: string,
    path: string,
    body: Uint8Array | undefined,
    signal: AbortSignal | undefined,
    what: string,
    allow404 = false,
  ): Promise<RawResponse> {
    const response = await send(method, `${PODMAN_API_PREFIX}${path}`, body, signal);
    if (response.status >= 200 && response.status < 300) return response;
    if (response.status === 404 && allow404) return response;
    throw apiError(response, what);
  }

  async function listSecrets(callOptions: PodmanCallOptions = {}): Promise<PodmanSecret[]> {
    const response = await call(
      "GET",
      "/secrets/json",
      undefined,
      callOptions.signal,
      "listing secrets",
    );
    const parsed = parseJson(response.body, "the secret list");
    if (!Array.isArray(parsed)) {
      throw new PsiError(
        "podman.bad_response",
        "the Podman API answered the secret list with something other than a JSON array",
      );
    }
    return parsed.map(toSecret);
  }

  async function createSecret(
    name: string,
    data: Uint8Array,
    createOptions: CreateSecretOptions = {},
  ): Promise<{ id: string }> {
    const query = new URLSearchParams({ name, driver: createOptions.driver ?? "shell" });
    if (createOptions.driverOptions !== undefined) {
      query.set("driveropts", JSON.stringify(createOptions.driverOptions));
    }
    if (createOptions.labels !== undefined)
      query.set("labels", JSON.stringify(createOptions.labels));
    const response = await call(
      "POST",
      `/secrets/create?${query.toString()}`,
      data,
      createOptions.signal,
      `creating secret ${name}`,
    );
    const parsed = parseJson(response.body, `the answer to creating secret ${name}`);
    const id = isRecord(parsed) ? parsed["ID"] : undefined;
    if (typeof id !== "string" || id.length === 0) {
      throw new PsiError(
        "podman.bad_response",
        `the Podman API created secret ${name} but returned no ID`,
      );
    }
    return { id };
  }

  async function deleteSecret(name: string, callOptions: PodmanCallOptions = {}): Promise<boolean> {
    const response = await call(
      "DELETE",
      `/secrets/${encodeURIComponent(name)}`,
      undefined,
      callOptions.signal,
      `deleting secret ${name}`,
      true,
    );
    return response.status !== 404;
  }

  return {
    socketPath,
    async ping(callOptions = {}) {
      await call("GET", "/_ping", undefined, callOptions.signal, "checking the API");
    },
    createSecret,
    deleteSecret,
    async replaceSecret(name, data, createOptions = {}) {
      await deleteSecret(name, createOptions.signal ? { signal: createOptions.signal } : {});
      return createSecret(name, data, createOptions);
    },
    listSecrets,
    async inspectSecret(name, callOptions = {}) {
      const response = await call(
        "GET",
        `/secrets/${encodeURIComponent(name)}/json`,
        undefined,
        callOptions.signal,
        `inspecting secret ${name}`,
        true,
      );
      if (response.status === 404) return undefined;
      return toSecret(parseJson(response.body, `secret ${name}`));
    },
  };
}

/** Turns a non-2xx answer into a PsiError with the status and Podman's own message. */
function apiError(response: RawResponse, what: string): PsiError {
  const text = response.body.toString("utf8");
  let message = text.trim().slice(0, 300);
  try {
    const parsed: unknown = JSON.parse(text);
    if (isRecord(parsed) && typeof parsed["message"] === "string") message = parsed["message"];
  } catch {
    // not JSON: keep the text
  }
  const code =
    response.status === 404
      ? "podman.not_found"
      : /name in use/.test(message)
        ? "podman.secret_exists"
        : "podman.api_error";
  const hint =
    code === "podman.secret_exists"
      ? "delete it first (podman secret rm NAME) or let psi replace it"
      : /exit status|executable|shell/.test(message)
        ? "the shell driver failed: is `psi serve` running and is containers.conf.d/psi.conf current (psi install)?"
        : undefined;
  return new PsiError(
    code,
    `Podman API error while ${what}: ${response.status} ${message || "(empty body)"}`,
    hint === undefined ? {} : { hint },
  );
}

function parseJson(body: Buffer, what: string): unknown {
  try {
    return JSON.parse(body.toString("utf8"));
  } catch (error) {
    throw new PsiError("podman.bad_response", `the Podman API answered ${what} with invalid JSON`, {
      cause: error,
    });
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function stringRecord(value: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (!isRecord(value)) return out;
  for (const [key, entry] of Object.entries(value)) {
    if (typeof entry === "string") out[key] = entry;
  }
  return out;
}

function toSecret(value: unknown): PodmanSecret {
  if (!isRecord(value) || typeof value["ID"] !== "string") {
    throw new PsiError("podman.bad_response", "the Podman API returned a secret without an ID");
  }
  const spec = isRecord(value["Spec"]) ? value["Spec"] : {};
  const driver = isRecord(spec["Driver"]) ? spec["Driver"] : {};
  return {
    id: value["ID"],
    name: typeof spec["Name"] === "string" ? spec["Name"] : "",
    driver: typeof driver["Name"] === "string" ? driver["Name"] : "",
    driverOptions: stringRecord(driver["Options"]),
    labels: stringRecord(spec["Labels"]),
    createdAt: typeof value["CreatedAt"] === "string" ? value["CreatedAt"] : undefined,
    updatedAt: typeof value["UpdatedAt"] === "string" ? value["UpdatedAt"] : undefined,
  };
}
