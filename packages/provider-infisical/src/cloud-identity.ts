import * as v from "valibot";
import { infisicalError } from "./errors.js";
import { createHttp, type FetchFn } from "./http.js";

interface MetadataOptions {
  baseUrl: string;
  timeoutMs: number;
  signal?: AbortSignal | undefined;
  fetch?: FetchFn | undefined;
}

const JWT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/**
 * A GCP identity JWT for `audience` from the metadata server (header `Metadata-Flavor:
 * Google`); `format=full` adds the instance claims Infisical's allowed-instance rules read.
 */
export async function gcpIdentityToken(
  audience: string,
  options: MetadataOptions,
): Promise<string> {
  const send = createHttp({
    baseUrl: options.baseUrl,
    service: "the GCP metadata server",
    fetch: options.fetch,
  });
  const answer = await send({
    method: "GET",
    url: "/computeMetadata/v1/instance/service-accounts/default/identity",
    query: { audience, format: "full" },
    headers: { "Metadata-Flavor": "Google" },
    timeoutMs: options.timeoutMs,
    signal: options.signal,
  });
  const token = answer.body.trim();
  if (answer.status !== 200 || !JWT.test(token)) {
    throw infisicalError(
      "provider.cloud_identity",
      `the GCP metadata server answered HTTP ${answer.status} without an identity token`,
      {
        hint: "run on a GCP resource with a service account attached",
      },
    );
  }
  return token;
}

const AzureTokenSchema = v.object({ access_token: v.pipe(v.string(), v.regex(JWT)) });

/** A managed-identity access token from Azure IMDS (header `Metadata: true`). */
export async function azureManagedIdentityToken(options: MetadataOptions): Promise<string> {
  const send = createHttp({
    baseUrl: options.baseUrl,
    service: "the Azure instance metadata service",
    fetch: options.fetch,
  });
  const answer = await send({
    method: "GET",
    url: "/metadata/identity/oauth2/token",
    query: { "api-version": "2018-02-01", resource: "https://management.azure.com/" },
    headers: { Metadata: "true" },
    timeoutMs: options.timeoutMs,
    signal: options.signal,
  });
  let json: unknown;
  try {
    json = JSON.parse(answer.body);
  } catch {
    json = undefined;
  }
  const parsed = v.safeParse(AzureTokenSchema, json);
  if (answer.status !== 200 || !parsed.success) {
    throw infisicalError(
      "provider.cloud_identity",
      `the Azure instance metadata service answered HTTP ${answer.status} without an access token`,
      {
        hint: "run on an Azure resource with a managed identity assigned",
      },
    );
  }
  return parsed.output.access_token;
}
