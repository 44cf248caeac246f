import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { InfisicalConfig } from "@psi/core";
import { infisicalMappingBytes, parseMapping } from "@psi/core";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  envFileImportItems,
  podmanImportItems,
  quadletImportItems,
  withEnvironment,
} from "../src/index.js";

// The import sources a frontend hands to importSecrets: dotenv text, quadlet files and
// Podman secrets (file driver data and PSI shell-driver mappings, on real files).

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "psi-import-sources-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("envFileImportItems", () => {
  it("sources each key as file:line and words each warning with its line", () => {
    const { items, warnings } = envFileImportItems("A=1\nnot a line\nB='two'\n", "app.env");
    expect(items).toEqual([
      { key: "A", value: "1", source: "app.env:1" },
      { key: "B", value: "two", source: "app.env:3" },
    ]);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/^app\.env:2: /);
  });
});

describe("quadletImportItems", () => {
  const unit = "[Container]\nEnvironment=A=1\nSecret=db,type=env,target=DB\n";

  it("imports Environment= lines and counts unresolved Secret= references", () => {
    const result = quadletImportItems([{ file: "app.container", text: unit }]);
    expect(result.items).toEqual([{ key: "A", value: "1", source: "app.container:2" }]);
    expect(result.references).toEqual([
      { name: "db", key: "DB", source: "app.container:3 Secret=db" },
    ]);
    expect(result.warnings).toEqual([
      "1 Secret= reference not imported (add --resolve-secrets to read them through Podman)",
    ]);
  });

  it("does not warn when the references will be resolved", () => {
    const result = quadletImportItems([{ file: "a.container", text: unit }], {
      resolveSecrets: true,
    });
    expect(result.warnings).toEqual([]);
  });
});

describe("podmanImportItems", () => {
  it("reads file-driver values and PSI mappings; a missing or unreadable secret is an item error", async () => {
    await writeFile(
      join(dir, "secretsdata.json"),
      JSON.stringify({ fileid: Buffer.from("from-file").toString("base64") }),
    );
    const shellId = "a1b2c3d4e5f6a7b8c9d0e1f2a";
    const mapping = infisicalMappingBytes({ project: "p", path: "/", key: "K" });
    await writeFile(join(dir, shellId), mapping);
    const looked: unknown[] = [];
    const items = await podmanImportItems(
      [
        { name: "f", key: "F", source: "podman secret f" },
        { name: "s", key: "S", source: "podman secret s" },
        { name: "gone", key: "GONE", source: "podman secret gone", missingSource: "podman" },
        { name: "pass", key: "PASS", source: "podman secret pass" },
      ],
      {
        listed: [
          { id: "fileid", name: "f", driver: "file", driverOptions: { path: dir } },
          { id: shellId, name: "s", driver: "shell", driverOptions: {} },
          { id: "passid", name: "pass", driver: "pass", driverOptions: {} },
        ],
        stateDir: dir,
        lookup: async (m) => {
          looked.push(m);
          return Buffer.from("from-psi");
        },
      },
    );
    expect(items.slice(0, 3)).toEqual([
      { key: "F", value: "from-file", source: "podman secret f" },
      { key: "S", value: "from-psi", source: "podman secret s" },
      { key: "GONE", error: "no Podman secret named gone", source: "podman" },
    ]);
    expect(looked).toEqual([parseMapping(mapping)]);
    expect(items[3]?.key).toBe("PASS");
    expect(items[3]?.value).toBeUndefined();
    expect(items[3]?.error).toContain("does not reveal values of the pass driver");
  });
});

describe("withEnvironment", () => {
  const config = {
    projects: { app: { id: "x", environment: "prod" }, other: { id: "y", environment: "prod" } },
  } as unknown as InfisicalConfig;

  it("replaces one project's environment for the run, leaving the configuration alone", () => {
    const changed = withEnvironment(config, "app", "staging");
    expect(changed.projects["app"]?.environment).toBe("staging");
    expect(changed.projects["other"]?.environment).toBe("prod");
    expect(config.projects["app"]?.environment).toBe("prod");
  });

  it("returns the configuration as is without an environment or for an unknown project", () => {
    expect(withEnvironment(config, "app", undefined)).toBe(config);
    expect(withEnvironment(config, "nope", "staging")).toBe(config);
  });
});
