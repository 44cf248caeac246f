import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { Env } from "@psi/core";
import aws4 from "aws4";
import * as v from "valibot";
import { infisicalError } from "./errors.js";
import { createHttp, type FetchFn } from "./http.js";

/** AWS credentials as the standard chain yields them. */
export interface AwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string | undefined;
  /** Which link of the chain found them: env, shared-files, ecs, ec2. */
  source: "env" | "shared-files" | "ecs" | "ec2";
}

/** Where the AWS credential chain looks (SPEC §8.1); metadata base URLs are configurable. */
export interface AwsChainOptions {
  env: Env;
  home: string;
  ecsMetadataUrl: string;
  ec2MetadataUrl: string;
  timeoutMs: number;
  signal?: AbortSignal | undefined;
  fetch?: FetchFn | undefined;
}

const ContainerCredentialsSchema = v.object({
  AccessKeyId: v.pipe(v.string(), v.nonEmpty()),
  SecretAccessKey: v.pipe(v.string(), v.nonEmpty()),
  Token: v.optional(v.string()),
});

const InstanceCredentialsSchema = v.object({
  Code: v.optional(v.string()),
  AccessKeyId: v.pipe(v.string(), v.nonEmpty()),
  SecretAccessKey: v.pipe(v.string(), v.nonEmpty()),
  Token: v.optional(v.string()),
});

/** Minimal INI reader for ~/.aws/credentials and ~/.aws/config. */
export function parseIni(text: string): Map<string, Map<string, string>> {
  const sections = new Map<string, Map<string, string>>();
  let current: Map<string, string> | undefined;
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    const header = /^\[\s*(.+?)\s*\]$/.exec(line);
    if (header) {
      current = sections.get(header[1]!) ?? new Map<string, string>();
      sections.set(header[1]!, current);
      continue;
    }
    const eq = line.indexOf("=");
    if (eq > 0 && current)
      current.set(line.slice(0, eq).trim().toLowerCase(), line.slice(eq + 1).trim());
  }
  return sections;
}

async function readIni(path: string): Promise<Map<string, Map<string, string>> | undefined> {
  try {
    return parseIni(await readFile(path, "utf8"));
  } catch {
    return undefined;
  }
}

function fromSection(section: Map<string, string> | undefined): AwsCredentials | undefined {
  const accessKeyId = section?.get("aws_access_key_id");
  const secretAccessKey = section?.get("aws_secret_access_key");
  if (!accessKeyId || !secretAccessKey) return undefined;
  return {
    accessKeyId,
    secretAccessKey,
    sessionToken: section?.get("aws_session_token") || undefined,
    source: "shared-files",
  };
}

async function fromSharedFiles(env: Env, home: string): Promise<AwsCredentials | undefined> {
  const profile = env["AWS_PROFILE"] || "default";
  const credentialsFile = env["AWS_SHARED_CREDENTIALS_FILE"] || join(home, ".aws", "credentials");
  const configFile = env["AWS_CONFIG_FILE"] || join(home, ".aws", "config");
  const fromCredentials = fromSection((await readIni(credentialsFile))?.get(profile));
  if (fromCredentials) return fromCredentials;
  const config = await readIni(configFile);
  return fromSection(
    config?.get(profile === "default" ? "default" : `profile ${profile}`) ?? config?.get(profile),
  );
}

function parseJson(body: string): unknown {
  try {
    return JSON.parse(body);
  } catch {
    return undefined;
  }
}

async function fromContainer(options: AwsChainOptions): Promise<AwsCredentials | undefined> {
  const relative = options.env["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"];
  const full = options.env["AWS_CONTAINER_CREDENTIALS_FULL_URI"];
  if (!relative && !full) return undefined;
  const url = relative ? `${options.ecsMetadataUrl.replace(/\/+$/, "")}${relative}` : full!;
  const headers: Record<string, string> = {};
  let authorization = options.env["AWS_CONTAINER_AUTHORIZATION_TOKEN"];
  const tokenFile = options.env["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"];
  if (tokenFile) authorization = (await readFile(tokenFile, "utf8")).trim();
  if (authorization && !relative) headers["Authorization"] = authorization;
  const send = createHttp({
    baseUrl: new URL(url).origin,
    service: "the ECS credentials endpoint",
    fetch: options.fetch,
  });
  const answer = await send({
    method: "GET",
    url,
    headers,
    timeoutMs: options.timeoutMs,
    signal: options.signal,
  });
  const parsed = v.safeParse(ContainerCredentialsSchema, parseJson(answer.body));
  if (answer.status !== 200 || !parsed.success) {
    throw infisicalError(
      "provider.cloud_identity",
      `the ECS credentials endpoint answered HTTP ${answer.status} without credentials`,
      {
        hint: "check the task role and AWS_CONTAINER_CREDENTIALS_* variables",
      },
    );
  }
  return {
    accessKeyId: parsed.output.AccessKeyId,
    secretAccessKey: parsed.output.SecretAccessKey,
    sessionToken: parsed.output.Token,
    source: "ecs",
  };
}

async function fromInstance(options: AwsChainOptions): Promise<AwsCredentials | undefined> {
  if ((options.env["AWS_EC2_METADATA_DISABLED"] ?? "").toLowerCase() === "true") return undefined;
  const send = createHttp({
    baseUrl: options.ec2MetadataUrl,
    service: "the EC2 instance metadata service",
    fetch: options.fetch,
  });
  const common = { timeoutMs: options.timeoutMs, signal: options.signal };
  // IMDSv2: a session token first, then the role name, then the role's credentials.
  const session = await send({
    method: "PUT",
    url: "/latest/api/token",
    headers: { "X-aws-ec2-metadata-token-ttl-seconds": "21600" },
    ...common,
  });
  if (session.status !== 200 || session.body.trim() === "") {
    throw infisicalError(
      "provider.cloud_identity",
      `the EC2 instance metadata service refused a session token (HTTP ${session.status})`,
      {
        hint: "IMDSv2 must be enabled, with a hop limit that reaches this host or container",
      },
    );
  }
  const headers = { "X-aws-ec2-metadata-token": session.body.trim() };
  const roles = await send({
    method: "GET",
    url: "/latest/meta-data/iam/security-credentials/",
    headers,
    ...common,
  });
  const role = roles.body
    .split(/\r?\n/)
    .map((line) => line.trim())
    .find((line) => line !== "");
  if (roles.status !== 200 || !role) {
    throw infisicalError("provider.cloud_identity", "the EC2 instance has no IAM role attached", {
      hint: "attach an instance profile with an IAM role to this instance",
    });
  }
  const answer = await send({
    method: "GET",
    url: `/latest/meta-data/iam/security-credentials/${encodeURIComponent(role)}`,
    headers,
    ...common,
  });
  const parsed = v.safeParse(InstanceCredentialsSchema, parseJson(answer.body));
  if (
    answer.status !== 200 ||
    !parsed.success ||
    (parsed.output.Code && parsed.output.Code !== "Success")
  ) {
    throw infisicalError(
      "provider.cloud_identity",
      `the EC2 instance metadata service answered HTTP ${answer.status} without credentials`,
      {
        hint: "check the instance's IAM role",
      },
    );
  }
  return {
    accessKeyId: parsed.output.AccessKeyId,
    secretAccessKey: parsed.output.SecretAccessKey,
    sessionToken: parsed.output.Token,
    source: "ec2",
  };
}

/** The standard AWS chain: env, shared credentials/config files, ECS container, EC2 IMDSv2. */
export async function resolveAwsCredentials(options: AwsChainOptions): Promise<AwsCredentials> {
  const { env } = options;
  if (env["AWS_ACCESS_KEY_ID"] && env["AWS_SECRET_ACCESS_KEY"]) {
    return {
      accessKeyId: env["AWS_ACCESS_KEY_ID"],
      secretAccessKey: env["AWS_SECRET_ACCESS_KEY"],
      sessionToken: env["AWS_SESSION_TOKEN"] || undefined,
      source: "env",
    };
  }
  const found =
    (await fromSharedFiles(env, options.home)) ??
    (await fromContainer(options)) ??
    (await fromInstance(options));
  if (!found) {
    throw infisicalError("provider.cloud_identity", "no AWS credentials found", {
      hint: "set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile in ~/.aws/credentials, or run with an ECS task role or EC2 instance role",
    });
  }
  return found;
}

/** The STS request Infisical's aws-auth replays: body of GetCallerIdentity, us-east-1. */
export const GET_CALLER_IDENTITY_BODY = "Action=GetCallerIdentity&Version=2011-06-15";

/** The signed request as Infisical's aws-auth login wants it (values still plain). */
export interface SignedStsRequest {
  method: "POST";
  url: string;
  body: string;
  headers: Record<string, string>;
}

/** Signs STS GetCallerIdentity with SigV4 (aws4), region us-east-1, service sts. */
export function signGetCallerIdentity(
  credentials: AwsCredentials,
  stsUrl: string,
): SignedStsRequest {
  const url = new URL(stsUrl);
  const request = {
    host: url.host,
    path: `${url.pathname || "/"}${url.search}`,
    method: "POST",
    service: "sts",
    region: "us-east-1",
    body: GET_CALLER_IDENTITY_BODY,
    headers: { "Content-Type": "application/x-www-form-urlencoded; charset=utf-8" } as Record<
      string,
      string | number
    >,
  };
  aws4.sign(request, {
    accessKeyId: credentials.accessKeyId,
    secretAccessKey: credentials.secretAccessKey,
    ...(credentials.sessionToken ? { sessionToken: credentials.sessionToken } : {}),
  });
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(request.headers)) headers[name] = String(value);
  return { method: "POST", url: url.toString(), body: GET_CALLER_IDENTITY_BODY, headers };
}
