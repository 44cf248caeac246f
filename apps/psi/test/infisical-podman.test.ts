// `psi infisical import podman-secret` and `import quadlet --resolve-secrets` against a real
// Podman 4.3 (TESTING.md): its API does not reveal secret values, so PSI reads the file
// driver's data and its own shell-driver mappings (resolved through the provider).
import { mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  type PodmanSandbox,
  podmanAvailable,
  podmanSandbox,
  stateDirDriverConf,
} from "@psi/testkit/podman";
import { requireTool } from "@psi/testkit/tmp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type InfisicalWorld, infisicalWorld } from "./infisical-helpers.js";

const skip = requireTool(podmanAvailable(), "podman", "podman");
let world: InfisicalWorld;
let podman: PodmanSandbox;
const ids: Record<string, string> = {};

beforeAll(async () => {
  if (skip) return;
  world = await infisicalWorld();
  await mkdir(world.stateDir, { recursive: true });
  const state = world.stateDir;
  // A shell driver that keeps mappings in state_dir, as PSI's does through psi serve.
  podman = await podmanSandbox(join(world.dir, "podman"), stateDirDriverConf(state));
  const create = async (name: string, data: string, driver?: string) => {
    ids[name] = await podman.createSecret(name, data, driver);
  };
  await create("file-secret", "from the file driver\nwith 'quotes'", "file");
  world.put("/source", "TOKEN", "resolved-through-psi");
  await create(
    "psi-secret",
    JSON.stringify({ provider: "infisical", project: "app", path: "/source", key: "TOKEN" }),
  );
  await create("foreign-secret", "x");
  // A shell secret with no PSI mapping: another tool's, whose value Podman 4.3 cannot reveal.
  await rm(join(state, ids["foreign-secret"]!));
  await podman.startService();
}, 60_000);

afterAll(async () => {
  if (skip) return;
  await podman?.stop();
  await world?.cleanup();
});

describe.skipIf(skip)("import from Podman secrets", () => {
  it("imports file-driver and PSI shell-driver secrets by name; a foreign one fails clearly", async () => {
    const result = await world.psi([
      "infisical",
      "import",
      "podman-secret",
      "file-secret",
      "psi-secret",
      "foreign-secret",
      "missing-secret",
      "--project",
      "app",
      "--path",
      "/imported",
      "--podman-socket",
      podman.socketPath,
    ]);
    expect(result.code).toBe(1);
    expect(world.get("/imported", "file-secret")).toBe("from the file driver\nwith 'quotes'");
    expect(world.get("/imported", "psi-secret")).toBe("resolved-through-psi");
    expect(result.out).toMatch(/FAILED\s+foreign-secret\s+.*does not exist \(not a PSI secret/);
    expect(result.out).toMatch(/FAILED\s+missing-secret\s+.*no Podman secret named missing-secret/);
    expect(result.out).toContain("4 keys: 2 created, 2 failed");
    expect(result.out + result.err).not.toContain("resolved-through-psi");
    expect(result.out + result.err).not.toContain("from the file driver");
  });

  it("--all takes every secret; --conflict skip keeps what exists", async () => {
    const result = await world.psi([
      "--json",
      "infisical",
      "import",
      "podman-secret",
      "--all",
      "--project",
      "app",
      "--path",
      "/imported",
      "--conflict",
      "skip",
      "--podman-socket",
      podman.socketPath,
    ]);
    const report = JSON.parse(result.out) as { results: Array<{ key: string; outcome: string }> };
    expect(report.results.map((r) => [r.key, r.outcome])).toEqual([
      ["file-secret", "skipped"],
      ["foreign-secret", "failed"],
      ["psi-secret", "skipped"],
    ]);
    expect(result.code).toBe(1);
  });

  it("quadlet --resolve-secrets imports Secret= references under their target names", async () => {
    const file = join(world.dir, "db.container");
    await writeFile(
      file,
      `[Container]
Image=quay.io/example/db
Environment=DB_USER=app
Secret=file-secret,type=env,target=DB_PASSWORD
Secret=psi-secret
`,
    );
    const result = await world.psi([
      "infisical",
      "import",
      "quadlet",
      file,
      "--resolve-secrets",
      "--project",
      "app",
      "--path",
      "/db",
      "--podman-socket",
      podman.socketPath,
    ]);
    expect(result.code).toBe(0);
    expect(result.out).toContain("3 keys: 3 created");
    expect(world.get("/db", "DB_USER")).toBe("app");
    expect(world.get("/db", "DB_PASSWORD")).toBe("from the file driver\nwith 'quotes'");
    expect(world.get("/db", "psi-secret")).toBe("resolved-through-psi");
  });
});
