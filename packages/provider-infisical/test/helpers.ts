import { type InfisicalConfig, InfisicalSchema, type LogFields, type Logger } from "@psi/core";
import {
  type FakeInfisical,
  type FakeInfisicalOptions,
  startFakeInfisical,
} from "@psi/testkit/fake-infisical";
import { tempDir } from "@psi/testkit/tmp";
import * as v from "valibot";
import { createInfisicalClient, type InfisicalClientOptions } from "../src/index.js";

/** Project ids used across the tests. */
export const PROJECT_ID = "11111111-2222-3333-4444-555555555555";
export const CLIENT_ID = "ua-client-id";
export const CLIENT_SECRET = "ua-client-secret-value";

/** A logger that keeps every line (to check that no secret ever reaches a log). */
export function memoryLogger(): Logger & {
  lines: Array<{ level: string; msg: string; fields?: LogFields }>;
} {
  const lines: Array<{ level: string; msg: string; fields?: LogFields }> = [];
  const make = (bindings: LogFields): Logger => ({
    debug: (msg, fields) => lines.push({ level: "debug", msg, fields: { ...bindings, ...fields } }),
    info: (msg, fields) => lines.push({ level: "info", msg, fields: { ...bindings, ...fields } }),
    warn: (msg, fields) => lines.push({ level: "warn", msg, fields: { ...bindings, ...fields } }),
    error: (msg, fields) => lines.push({ level: "error", msg, fields: { ...bindings, ...fields } }),
    child: (more) => make({ ...bindings, ...more }),
    enabled: () => true,
  });
  return Object.assign(make({}), { lines });
}

/** The validated `providers.infisical` block for a fake, with tiny retry delays and timeouts. */
export function infisicalConfig(
  fake: { url: string },
  raw: Record<string, unknown> = {},
): InfisicalConfig {
  return v.parse(InfisicalSchema, {
    api_url: fake.url,
    auth: { method: "universal-auth", client_id: CLIENT_ID, client_secret: CLIENT_SECRET },
    projects: { app: { id: PROJECT_ID, environment: "prod" } },
    retry_delays: [0.01, 0.01, 0.01],
    setup_timeout: 2,
    lookup_timeout: 1,
    ...raw,
  });
}

/** A fake with one universal-auth identity, a temp state dir, and a client factory. */
export async function fakeWorld(options: FakeInfisicalOptions = {}) {
  const fake = await startFakeInfisical(options);
  fake.addUniversalAuth({
    clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    identityId: "ua-identity",
  });
  const dir = await tempDir("psi-infisical-");
  const logger = memoryLogger();
  return {
    fake,
    stateDir: dir.path,
    logger,
    client(overrides: Partial<InfisicalClientOptions> = {}, raw: Record<string, unknown> = {}) {
      return createInfisicalClient({
        config: infisicalConfig(fake, raw),
        stateDir: dir.path,
        env: {},
        logger,
        ...overrides,
      });
    },
    put(path: string, key: string, value: string, environment = "prod") {
      fake.setSecret({ projectId: PROJECT_ID, environment, path, key, value });
    },
    async cleanup() {
      await fake.stop();
      await dir.cleanup();
    },
  };
}

export type FakeWorld = Awaited<ReturnType<typeof fakeWorld>>;
export type { FakeInfisical };
