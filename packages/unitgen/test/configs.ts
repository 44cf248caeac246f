// The configurations the fixtures are rendered from (test/fixtures/<name>/<mode>/...).
import { dirname } from "node:path";
import { ConfigSchema, defaultPaths, type PsiConfig, type Scope } from "@psi/core";
import { type UnitSettings, unitSettingsFromConfig } from "../src/index.js";

/** Validates a raw config through core's schema (Standard Schema interface: no valibot import). */
export async function parseConfig(raw: unknown): Promise<PsiConfig> {
  const result = await ConfigSchema["~standard"].validate(raw);
  if (result.issues)
    throw new Error(`test config invalid: ${result.issues.map((i) => i.message).join("; ")}`);
  return result.value;
}

const infisical = {
  api_url: "https://infisical.example.com",
  auth: { method: "universal-auth", client_id: "id", client_secret: "secret" },
  projects: { myproject: { id: "0b7c8d1e-0000-4000-8000-000000000000" } },
};
const workloads = { myapp: { secrets: [{ project: "myproject", path: "/myapp" }] } };

export interface FixtureCase {
  name: string;
  scope: Scope;
  raw: Record<string, unknown>;
  socketActivation?: boolean;
  /** The config file when it is not at the scope's default path. */
  configFile?: string;
}

/** The reviewed configurations: no cache, tpm, hsm and ca_cert (SPEC §10), plus a user-scope host. */
export const FIXTURE_CASES: FixtureCase[] = [
  { name: "no-cache", scope: "system", raw: { providers: { infisical }, workloads } },
  {
    name: "tpm",
    scope: "system",
    raw: { providers: { infisical, nitrokeyhsm: {} }, workloads, cache: { backend: "tpm" } },
  },
  {
    name: "hsm",
    scope: "system",
    raw: {
      providers: { infisical, nitrokeyhsm: {} },
      workloads,
      cache: { backend: "hsm", refresh_interval: "30min", refresh_randomized_delay: "2m" },
    },
  },
  {
    name: "ca-cert",
    scope: "system",
    raw: {
      ca_cert: "/etc/pki/tls/certs/ca-bundle.crt",
      providers: {
        infisical: {
          ...infisical,
          tls: {
            certificates: {
              web: {
                project: "myproject",
                profile_id: "p1",
                common_name: "web.example.com",
                output: {
                  cert: "/etc/traefik/tls/cert.pem",
                  key: "/etc/traefik/tls/key.pem",
                  chain: "/etc/traefik/tls/chain.pem",
                  ca: "/etc/pki/psi/ca.pem",
                },
              },
            },
          },
        },
      },
      workloads,
      cache: { backend: "keyfile" },
    },
  },
  {
    name: "user-tpm-socket",
    scope: "user",
    socketActivation: true,
    raw: { providers: { infisical, local: {} }, workloads, cache: { backend: "tpm" } },
  },
  {
    name: "custom-config",
    scope: "system",
    configFile: "/srv/psi/psi.yaml",
    raw: { providers: { infisical }, workloads, cache: { backend: "keyfile" } },
  },
];

/** Settings of a case, with the scope's default paths for a fixed home and uid. */
export async function settingsFor(testCase: FixtureCase): Promise<UnitSettings> {
  const paths = defaultPaths(
    testCase.scope,
    { XDG_RUNTIME_DIR: "/run/user/1000" },
    1000,
    "/home/core",
  );
  if (testCase.configFile) {
    paths.config = testCase.configFile;
    paths.configDir = dirname(testCase.configFile);
  }
  return unitSettingsFromConfig(await parseConfig(testCase.raw), paths, testCase.scope);
}

export const IMAGE = "ghcr.io/example/psi:1.0.0";
export const NODE_PATH = "/usr/bin/node";
export const PSI_PATH = "/usr/lib/node_modules/@psi/cli/dist/cli.js";
/** What native units run: Node and the CLI script, both absolute. */
export const NATIVE = { nodePath: NODE_PATH, psiPath: PSI_PATH };
