import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { loadConfig, makeContext, type Provider, type PsiContext } from "@psi/core";
import { infisicalProvider } from "@psi/provider-infisical";
import { type FakeInfisical, startFakeInfisical } from "@psi/testkit/fake-infisical";
import { recordingLogger } from "@psi/testkit/logger";
import {
  type PodmanSandbox,
  podmanAvailable,
  podmanSandbox,
  stateDirDriverConf,
} from "@psi/testkit/podman";
import { requireTool, tempDir } from "@psi/testkit/tmp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { importPodmanSecrets, importQuadlets } from "../src/index.js";

// The imports that read Podman's secrets, against a real Podman 4.3 (its API does not
// reveal values: the file driver's data and PSI's shell-driver mappings are read instead)
// and the fake Infisical.

const PROJECT_ID = "6f1d3c2a-0000-4000-8000-00000000b001";
const skip = requireTool(podmanAvailable(), "podman", "podman");
let fake: FakeInfisical;
let dir: { path: string; cleanup: () => Promise<void> };
let podman: PodmanSandbox;
let context: PsiContext;
const ids: Record<string, string> = {};

/** Opens providers as a frontend does; records what was opened and closed. */
function providerOpener() {
  const opened: string[] = [];
  const closed: string[] = [];
  return {
    opened,
    closed,
    async openProviders(only: string): Promise<Map<string, Provider>> {
      opened.push(only);
      if (only !== "infisical") return new Map();
      const provider = infisicalProvider(context);
      await provider.open();
      const close = provider.close;
      return new Map([
        [
          only,
          {
            ...provider,
            close: async () => {
              closed.push(only);
              await close();
            },
          },
        ],
      ]);
    },
  };
}

const get = (path: string, key: string) =>
  fake.getSecret({ projectId: PROJECT_ID, environment: "prod", path, key });

beforeAll(async () => {
  if (skip) return;
  fake = await startFakeInfisical();
  fake.addUniversalAuth({ clientId: "ops-id", clientSecret: "ops-secret", identityId: "ops" });
  fake.addFolder({ projectId: PROJECT_ID, environment: "prod", path: "/" });
  dir = await tempDir("psi-ops-import-");
  const stateDir = join(dir.path, "state");
  await mkdir(stateDir);
  const configPath = join(dir.path, "config.yaml");
  await writeFile(
    configPath,
    `state_dir: ${stateDir}
providers:
  infisical:
    api_url: ${fake.url}
    auth: { method: universal-auth, client_id: ops-id, client_secret: ops-secret }
    projects: { app: { id: ${PROJECT_ID}, environment: prod } }
    retry_delays: [0.01]
    setup_timeout: 5
`,
  );
  const loaded = await loadConfig({ path: configPath, env: {}, uid: process.getuid!() });
  context = makeContext(loaded, { logger: recordingLogger(), env: {} });
  podman = await podmanSandbox(join(dir.path, "podman"), stateDirDriverConf(stateDir));
  const create = async (name: string, data: string, driver?: string) => {
    ids[name] = await podman.createSecret(name, data, driver);
  };
  await create("file-secret", "from the file driver", "file");
  fake.setSecret({
    projectId: PROJECT_ID,
    environment: "prod",
    path: "/source",
    key: "TOKEN",
    value: "through-psi",
  });
  await create(
    "psi-secret",
    JSON.stringify({ provider: "infisical", project: "app", path: "/source", key: "TOKEN" }),
  );
  await create("local-secret", JSON.stringify({ provider: "local", blob: "x" }));
  await podman.startService();
}, 60_000);

afterAll(async () => {
  if (skip) return;
  await podman?.stop();
  await fake?.stop();
  await dir?.cleanup();
});

describe.skipIf(skip)("importPodmanSecrets", () => {
  it("imports by name, opens each mapping's provider once and closes it; misses are failed keys", async () => {
    const opener = providerOpener();
    const run = await importPodmanSecrets(context, {
      project: "app",
      path: "/by-name",
      conflict: "fail",
      podmanSocket: podman.socketPath,
      openProviders: opener.openProviders,
      names: ["file-secret", "psi-secret", "local-secret", "missing"],
    });
    expect(run.results.map((r) => [r.key, r.outcome, r.source])).toEqual([
      ["file-secret", "created", "podman secret file-secret"],
      ["local-secret", "failed", "podman secret local-secret"],
      ["missing", "failed", "podman"],
      ["psi-secret", "created", "podman secret psi-secret"],
    ]);
    expect(run.results[1]?.reason).toContain("provider local is not configured or failed to open");
    expect(run.ok).toBe(false);
    expect(run.warnings).toEqual([]);
    expect(get("/by-name", "file-secret")).toBe("from the file driver");
    expect(get("/by-name", "psi-secret")).toBe("through-psi");
    expect(opener.opened).toEqual(["infisical", "local"]);
    expect(opener.closed).toEqual(["infisical"]);
  });

  it("all takes every Podman secret; a dry run writes nothing", async () => {
    const run = await importPodmanSecrets(context, {
      project: "app",
      path: "/all",
      conflict: "fail",
      dryRun: true,
      podmanSocket: podman.socketPath,
      openProviders: providerOpener().openProviders,
      names: [],
      all: true,
    });
    expect(run.results.map((r) => r.key).sort()).toEqual([
      "file-secret",
      "local-secret",
      "psi-secret",
    ]);
    expect(get("/all", "file-secret")).toBeUndefined();
  });
});

describe.skipIf(skip)("importQuadlets", () => {
  it("resolves Secret= references through Podman only when asked", async () => {
    const file = join(dir.path, "db.container");
    await writeFile(
      file,
      "[Container]\nEnvironment=DB_USER=app\nSecret=file-secret,type=env,target=DB_PASSWORD\n",
    );
    const unresolved = await importQuadlets(context, {
      project: "app",
      path: "/quadlet",
      conflict: "fail",
      // never contacted: nothing asks for Podman without resolveSecrets
      podmanSocket: join(dir.path, "no-podman.sock"),
      openProviders: providerOpener().openProviders,
      files: [file],
    });
    expect(unresolved.results.map((r) => r.key)).toEqual(["DB_USER"]);
    expect(unresolved.warnings).toEqual([
      "1 Secret= reference not imported (add --resolve-secrets to read them through Podman)",
    ]);

    const resolved = await importQuadlets(context, {
      project: "app",
      path: "/quadlet",
      conflict: "skip",
      podmanSocket: podman.socketPath,
      openProviders: providerOpener().openProviders,
      files: [file],
      resolveSecrets: true,
    });
    expect(resolved.results.map((r) => [r.key, r.outcome])).toEqual([
      ["DB_PASSWORD", "created"],
      ["DB_USER", "skipped"],
    ]);
    expect(get("/quadlet", "DB_PASSWORD")).toBe("from the file driver");
  });
});
