import { type AuthConfig, errorMessage, isPsiError } from "@psi/core";
import { type CallOptions, createInfisicalClient, type InfisicalClientOptions } from "../client.js";

/** The login result of one configured auth, for each project that uses it. */
export interface LoginCheck {
  /** The project name, or undefined for the global auth when no project uses it. */
  project: string | undefined;
  /** `global` when the project uses providers.infisical.auth, else `project`. */
  auth: "global" | "project";
  method: AuthConfig["method"];
  ok: boolean;
  /** Token expiry (unix seconds) after a successful login. */
  expiresAt?: number;
  error?: { code: string; message: string; hint?: string };
}

// A project name no configuration can hold (YAML keys cannot contain NUL here).
const GLOBAL = "\u0000global";

/**
 * Logs in with every configured auth (SPEC §12 `psi infisical login`): once per distinct
 * identity, reported for each project that uses it, plus the global auth when no project
 * uses it. Fresh logins (token caches are refreshed). Never throws for a failed login.
 */
export async function loginAll(
  options: InfisicalClientOptions,
  call: CallOptions = {},
): Promise<LoginCheck[]> {
  const { config } = options;
  const projects = Object.entries(config.projects);
  const globalUsed = projects.some(([, project]) => project.auth === undefined);
  const augmented =
    config.auth && !globalUsed
      ? {
          ...config,
          projects: {
            ...config.projects,
            [GLOBAL]: { id: "-", environment: "-", auth: undefined },
          },
        }
      : config;
  const client = createInfisicalClient({ ...options, config: augmented });
  const targets: Array<{
    project: string | undefined;
    name: string;
    auth: AuthConfig | undefined;
  }> = projects.map(([name, project]) => ({
    project: name,
    name,
    auth: project.auth ?? config.auth,
  }));
  if (augmented !== config) targets.push({ project: undefined, name: GLOBAL, auth: config.auth });

  const byIdentity = new Map<string, Promise<Omit<LoginCheck, "project" | "auth" | "method">>>();
  const checks = targets.map(async (target): Promise<LoginCheck> => {
    const scope = augmented.projects[target.name]?.auth === undefined ? "global" : "project";
    if (!target.auth) {
      return {
        project: target.project,
        auth: scope,
        method: "universal-auth",
        ok: false,
        error: {
          code: "provider.not_configured",
          message: `Infisical project ${target.name} has no auth and there is no global auth`,
        },
      };
    }
    const identity = JSON.stringify(target.auth);
    let pending = byIdentity.get(identity);
    if (!pending) {
      pending = client.login(target.name, call).then(
        (token) => ({ ok: true, expiresAt: token.expiresAt }),
        (error: unknown) => ({
          ok: false,
          error: {
            code: isPsiError(error) ? error.code : "provider.error",
            message: errorMessage(error),
            ...(isPsiError(error) && error.hint ? { hint: error.hint } : {}),
          },
        }),
      );
      byIdentity.set(identity, pending);
    }
    const result = structuredClone(await pending);
    // The global auth's check logs in under a placeholder project: name it as what it is.
    if (target.project === undefined && result.error) {
      result.error.message = result.error.message.replace(GLOBAL, "(global auth)");
    }
    return { project: target.project, auth: scope, method: target.auth.method, ...result };
  });
  return Promise.all(checks);
}
