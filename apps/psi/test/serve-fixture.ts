import type { ChildProcess } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type FakeInfisical, startFakeInfisical } from "@psi/testkit/fake-infisical";
import { tempDir } from "@psi/testkit/tmp";
import { afterEach, beforeAll, beforeEach } from "vitest";
import { killRunning, requireBuiltCli, type Serve, spawnServe } from "./serve-helpers.js";

// One fake Infisical secret behind one mapping file, and `psi serve` processes started
// on it: the common ground of the process tests (signals, directory checks).

/** The mapping of `id1` and the value the fake Infisical answers for it. */
export const MAPPING = {
  provider: "infisical",
  project: "myproject",
  path: "/myapp",
  key: "DB_PASSWORD",
};
export const LIVE_VALUE = "live-from-infisical";
const PROJECT_ID = "0f3c1a2b-1111-4222-8333-444455556666";

/** What a test sees of the fixture (fields are fresh for each test). */
export interface ServeFixture {
  dir: string;
  stateDir: string;
  config: string;
  fake: FakeInfisical;
  /** Rewrites the config with extra top-level YAML lines. */
  writeConfig(extra?: string[]): Promise<void>;
  /** Starts `psi serve -c <config> --socket <socket>` (default `<dir>/run/psi.sock`). */
  start(options?: {
    socket?: string;
    direct?: boolean;
    env?: Record<string, string>;
    args?: string[];
  }): Serve;
}

/** Registers the hooks that build the fixture before each test and tear it down after. */
export function useServeFixture(): ServeFixture {
  const running: ChildProcess[] = [];
  let cleanup: () => Promise<void> = async () => {};
  const fixture = {} as ServeFixture;

  beforeAll(requireBuiltCli);
  beforeEach(async () => {
    const dir = await tempDir("psi-serve-process-");
    cleanup = dir.cleanup;
    fixture.dir = dir.path;
    fixture.stateDir = join(dir.path, "state");
    fixture.config = join(dir.path, "config.yaml");
    await mkdir(fixture.stateDir, { recursive: true, mode: 0o700 });
    await mkdir(join(dir.path, "home"));
    fixture.fake = await startFakeInfisical();
    fixture.fake.addUniversalAuth({ clientId: "cid", clientSecret: "csecret" });
    fixture.fake.setSecret({
      projectId: PROJECT_ID,
      environment: "prod",
      path: "/myapp",
      key: "DB_PASSWORD",
      value: LIVE_VALUE,
    });
    await writeFile(join(fixture.stateDir, "id1"), JSON.stringify(MAPPING), { mode: 0o600 });
    fixture.writeConfig = (extra = []) =>
      writeFile(
        fixture.config,
        [
          `state_dir: ${fixture.stateDir}`,
          "providers:",
          "  infisical:",
          `    api_url: ${fixture.fake.url}`,
          "    auth: { method: universal-auth, client_id: cid, client_secret: csecret }",
          `    projects: { myproject: { id: ${PROJECT_ID}, environment: prod } }`,
          ...extra,
          "",
        ].join("\n"),
        { mode: 0o600 },
      );
    await fixture.writeConfig();
    fixture.start = (options = {}) => {
      const socket = options.socket ?? join(dir.path, "run", "psi.sock");
      const serve = spawnServe({
        config: fixture.config,
        socket,
        home: join(dir.path, "home"),
        args: ["--socket", socket, ...(options.args ?? [])],
        ...(options.direct ? { direct: true } : {}),
        ...(options.env ? { env: options.env } : {}),
      });
      running.push(serve.child);
      return serve;
    };
  });
  afterEach(async () => {
    killRunning(running);
    await fixture.fake.stop();
    await cleanup();
  });
  return fixture;
}
