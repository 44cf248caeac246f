import { homedir } from "node:os";
import type { AuthConfig, Env, InfisicalConfig, Logger } from "@psi/core";
import { resolveAwsCredentials, signGetCallerIdentity } from "./aws.js";
import { azureManagedIdentityToken, gcpIdentityToken } from "./cloud-identity.js";
import type { FetchFn } from "./http.js";

/** The login endpoint segment of each configured method (SPEC §8.1). */
export const LOGIN_PATHS = {
  "universal-auth": "universal-auth",
  "aws-iam": "aws-auth",
  gcp: "gcp-auth",
  azure: "azure-auth",
} as const satisfies Record<AuthConfig["method"], string>;

/** What building a login request needs besides the auth block. */
export interface LoginContext {
  config: InfisicalConfig;
  env: Env;
  home?: string | undefined;
  timeoutMs: number;
  signal?: AbortSignal | undefined;
  fetch?: FetchFn | undefined;
  logger?: Logger | undefined;
}

const base64 = (text: string) => Buffer.from(text, "utf8").toString("base64");

/**
 * The body of `POST /api/v1/auth/<method>/login` for one auth block. Cloud methods first
 * fetch their proof (signed STS request, GCP identity JWT, Azure IMDS token) from the
 * configured endpoints. The result holds credentials: never log it.
 */
export async function buildLoginBody(
  auth: AuthConfig,
  context: LoginContext,
): Promise<Record<string, string>> {
  const { endpoints } = context.config;
  const metadata = { timeoutMs: context.timeoutMs, signal: context.signal, fetch: context.fetch };
  switch (auth.method) {
    case "universal-auth":
      return { clientId: auth.client_id, clientSecret: auth.client_secret };
    case "aws-iam": {
      const credentials = await resolveAwsCredentials({
        env: context.env,
        home: context.home ?? context.env["HOME"] ?? homedir(),
        ecsMetadataUrl: endpoints.aws_ecs_metadata,
        ec2MetadataUrl: endpoints.aws_metadata,
        ...metadata,
      });
      context.logger?.debug("signing STS GetCallerIdentity for Infisical aws-auth", {
        event: "infisical.login",
        credentials_source: credentials.source,
      });
      const signed = signGetCallerIdentity(credentials, endpoints.aws_sts);
      return {
        identityId: auth.identity_id,
        iamHttpRequestMethod: signed.method,
        // Not in Infisical's documented body (it derives the URL from the signature's
        // region); sent because the reference sends it, and ignored by the server.
        iamRequestUrl: base64(signed.url),
        iamRequestBody: base64(signed.body),
        iamRequestHeaders: base64(JSON.stringify(signed.headers)),
      };
    }
    case "gcp":
      return {
        identityId: auth.identity_id,
        jwt: await gcpIdentityToken(auth.identity_id, {
          baseUrl: endpoints.gcp_metadata,
          ...metadata,
        }),
      };
    case "azure":
      return {
        identityId: auth.identity_id,
        jwt: await azureManagedIdentityToken({ baseUrl: endpoints.azure_imds, ...metadata }),
      };
  }
}
