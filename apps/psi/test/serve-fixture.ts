import type { ChildProcess } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type FakeInfisical, startFakeInfisical } from "@psi/testkit/fake-infisical";
import { tempDir } from "@psi/testkit/tmp";
import { afterEach, beforeAll, beforeEach } from "vitest";
import {
  killRunning,
  requireBuiltCli,
  type Serve,
  type SpawnServeOptions,
  spawnServe,
} from "./serve-helpers.js";

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
export const PROJECT_ID = "0f3c1a2b-1111-4222-8333-444455556666";

/** What a test sees of the fixture (fields are fresh for each test). */
export interface ServeFixture {
  dir: string;
  stateDir: string;
  config: string;
  /** Where a keyfile cache keeps its key (created by {@link ServeFixture.keyfileCache}'s users). */
  keyFile: string;
  /** `<stateDir>/cache.enc`. */
  cachePath: string;
  /** `<dir>/run/psi.sock`, the socket {@link ServeFixture.start} listens on by default. */
  socket: string;
  fake: FakeInfisical;
  /** The config line of a keyfile cache at {@link keyFile} and {@link cachePath}. */
  keyfileCache(): string;
  /** Rewrites the config with extra top-level YAML lines. */
  writeConfig(extra?: string[]): Promise<void>;
  /** Starts `psi serve -c <config> --socket <socket>` (default `<dir>/run/psi.sock`). */
  start(options?: {
    socket?: string;
    direct?: boolean;
    env?: Record<string, string>;
    args?: string[];
  }): Serve;
  /** `psi serve` exactly as `options` say (no `--socket` added), stopped after the test. */
  spawn(options: Omit<SpawnServeOptions, "config" | "home">): Serve;
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
    fixture.keyFile = join(dir.path, "etc", "cache.keyfile");
    fixture.cachePath = join(fixture.stateDir, "cache.enc");
    fixture.socket = join(dir.path, "run", "psi.sock");
    fixture.keyfileCache = () =>
      `cache: { enabled: true, backend: keyfile, key_file: ${fixture.keyFile}, path: ${fixture.cachePath} }`;
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
    fixture.spawn = (options) => {
      const serve = spawnServe({
        config: fixture.config,
        home: join(dir.path, "home"),
        ...options,
      });
      running.push(serve.child);
      return serve;
    };
    fixture.start = (options = {}) => {
      const socket = options.socket ?? fixture.socket;
      return fixture.spawn({
        socket,
        args: ["--socket", socket, ...(options.args ?? [])],
        ...(options.direct ? { direct: true } : {}),
        ...(options.env ? { env: options.env } : {}),
      });
    };
  });
  afterEach(async () => {
    killRunning(running);
    await fixture.fake.stop();
    await cleanup();
  });
  return fixture;
}
