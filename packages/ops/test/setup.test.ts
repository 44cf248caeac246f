import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { LoadedConfig, Provider } from "@psi/core";
import { loadConfig, makeContext } from "@psi/core";
import { createPodmanClient } from "@psi/podman";
import { infisicalProvider } from "@psi/provider-infisical";
import { type FakeInfisical, startFakeInfisical } from "@psi/testkit/fake-infisical";
import {
  type PodmanSandbox,
  podmanAvailable,
  podmanSandbox,
  stateDirDriverConf,
} from "@psi/testkit/podman";
import { requireTool, tempDir } from "@psi/testkit/tmp";
import { captureLogger } from "@psi/testkit/unix-http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dryRunHostSetup, runHostSetup } from "../src/index.js";

// psi setup's host orchestration against a real Podman service and the real Infisical
// provider talking to the fake Infisical: which providers open, the retry policy from
// retry_delays, closing what was opened, and the driver options a dry run compares with.

const skip = requireTool(podmanAvailable(), "podman", "podman");
const PROJECT = { id: "11111111-2222-3333-4444-555555555555", environment: "prod" };

describe.skipIf(skip)("runHostSetup and dryRunHostSetup (real Podman, fake Infisical)", () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  let sandbox: PodmanSandbox;
  let fake: FakeInfisical;
  let stateDir: string;
  let env: Record<string, string>;
  let loaded: LoadedConfig;
  const uid = process.getuid!();

  beforeAll(async () => {
    dir = await tempDir("psi-ops-setup-");
    stateDir = join(dir.path, "state");
    await mkdir(stateDir, { mode: 0o700 });
    await mkdir(join(dir.path, "run"));
    fake = await startFakeInfisical();
    fake.addUniversalAuth({ clientId: "ops-client", clientSecret: "ops-secret-0123" });
    fake.addFolder({ projectId: PROJECT.id, environment: PROJECT.environment, path: "/app" });
    fake.setSecret({ ...PROJECT, projectId: PROJECT.id, path: "/app", key: "DB", value: "pw" });
    sandbox = await podmanSandbox(join(dir.path, "podman"), stateDirDriverConf(stateDir));
    await sandbox.startService();
    // No systemd tools and no session bus: daemon-reload is reported unavailable, never run.
    env = {
      PATH: join(dir.path, "no-tools"),
      HOME: dir.path,
      XDG_RUNTIME_DIR: join(dir.path, "run"),
    };
    const configFile = join(dir.path, "config.yaml");
    const config = {
      scope: "user",
      state_dir: stateDir,
      systemd_dir: join(dir.path, "systemd"),
      providers: {
        infisical: {
          api_url: fake.url,
          auth: {
            method: "universal-auth",
            client_id: "ops-client",
            client_secret: "ops-secret-0123",
          },
          projects: { proj: PROJECT },
          retry_delays: [0.01],
          setup_timeout: 2,
        },
        local: {},
      },
      workloads: {
        app: { provider: "infisical", secrets: [{ project: "proj", path: "/app" }] },
        sealed: { provider: "local" },
      },
      cache: { enabled: false },
    };
    await writeFile(configFile, JSON.stringify(config));
    loaded = await loadConfig({ path: configFile, env, uid });
  });
  afterAll(async () => {
    await sandbox?.stop();
    await fake?.stop();
    await dir?.cleanup();
  });

  it("opens only the providers that fetch, retries a failed listing, registers, and closes them", async () => {
    const log = captureLogger("debug");
    const asked: string[] = [];
    let closed = 0;
    fake.fail5xx(503, 1);
    const result = await runHostSetup({
      loaded,
      env,
      uid,
      logger: log.logger,
      podmanSocket: sandbox.socketPath,
      openProviders: async (name) => {
        asked.push(name);
        const provider: Provider = infisicalProvider(
          makeContext(loaded, { logger: log.logger, env }),
        );
        await provider.open();
        const close = provider.close.bind(provider);
        provider.close = async () => {
          closed++;
          await close();
        };
        return new Map([[name, provider]]);
      },
    });
    expect(result.ok).toBe(true);
    expect(asked).toEqual(["infisical"]);
    expect(closed).toBe(1);
    expect(log.records().filter((r) => r.event === "setup.retry")).toHaveLength(1);
    const app = result.workloads.find((w) => w.name === "app");
    expect(app?.created).toEqual(["DB"]);
    const names = (await createPodmanClient({ socketPath: sandbox.socketPath }).listSecrets()).map(
      (s) => s.name,
    );
    expect(names).toContain("app--DB");
  });

  it("a dry run compares Podman's secrets with the options psi install writes for --socket", async () => {
    // Registered through the test's cat driver, not the curl one psi install writes.
    await sandbox.createSecret("app--EXTRA", '{"provider":"local"}', "shell");
    const report = await dryRunHostSetup({
      loaded,
      env,
      uid,
      logger: captureLogger("warn").logger,
      podmanSocket: sandbox.socketPath,
      socket: join(dir.path, "run", "psi.sock"),
    });
    const extra = report.secrets.find((s) => s.name === "app--EXTRA");
    expect(extra).toMatchObject({ class: "stale-opts", workload: "app" });
    expect(extra?.differingOptions?.length).toBeGreaterThan(0);
    expect(report.workloads.find((w) => w.name === "app")?.missingFromDropIn).toContain(
      "app--EXTRA",
    );
  });
});
