// docs/configuration.md is generated from the schema (`pnpm docs:config`); these tests keep
// the committed file equal to what the schema renders, and check that the "when invalid"
// column says what the loader really says for a bad value at each key.
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import {
  ConfigSchema,
  configProblems,
  describeConfigKeys,
  parseConfig,
  renderConfigReference,
} from "../src/index.js";

const DOC = fileURLToPath(new URL("../../../docs/configuration.md", import.meta.url));

/** Puts `value` at a documented path, naming every `<name>` "x" and every list item [0]. */
function configWith(path: string, value: unknown, when?: string): Record<string, unknown> {
  const root: Record<string, unknown> = {};
  const segments = path
    .replaceAll("[]", ".[0]")
    .split(".")
    .map((s) => (s === "<name>" ? "x" : s));
  let node: Record<string, unknown> | unknown[] = root;
  segments.forEach((segment, index) => {
    const last = index === segments.length - 1;
    const next = segments[index + 1];
    const child = last ? value : next === "[0]" ? [] : {};
    if (Array.isArray(node)) {
      node[0] ??= child;
      node = node[0] as Record<string, unknown>;
    } else if (segment !== "[0]") {
      node[segment] ??= child;
      if (!last) node = node[segment] as Record<string, unknown>;
    }
  });
  if (when !== undefined) {
    // The key exists for one value of the discriminator (`method: gcp`): set it beside.
    const [key, values] = when.split(": ");
    const parent = path.split(".").slice(0, -1).join(".");
    const holder = configWith(`${parent}.${key}`, values?.split(", ")[0]);
    return merge(root, holder);
  }
  return root;
}

function merge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [key, value] of Object.entries(b)) {
    const mine = out[key];
    out[key] =
      mine && typeof mine === "object" && !Array.isArray(mine) && typeof value === "object"
        ? merge(mine as Record<string, unknown>, value as Record<string, unknown>)
        : (mine ?? value);
  }
  return out;
}

describe("docs/configuration.md", () => {
  it("is what the schema generates (run `pnpm docs:config` after changing the schema)", async () => {
    const committed = await readFile(DOC, "utf8");
    expect(committed, "docs/configuration.md is stale: run `pnpm docs:config`").toBe(
      renderConfigReference(),
    );
  });

  it("lists every key of the schema, top level and nested", () => {
    const paths = describeConfigKeys().map((row) => row.path);
    for (const key of Object.keys(ConfigSchema.entries)) expect(paths).toContain(key);
    expect(paths).toContain("cache.refresh_randomized_delay");
    expect(paths).toContain("workloads.<name>.secrets[].recursive");
    expect(paths).toContain("providers.infisical.projects.<name>.auth.identity_id");
    expect(paths).toContain("providers.infisical.tls.certificates.<name>.output.mode");
  });

  it("documents the message the loader gives for a bad value at every key", () => {
    const checked: string[] = [];
    for (const row of describeConfigKeys()) {
      if (row.messages.length === 0 || row.path.endsWith(".method")) continue;
      // A list where a scalar belongs, a number where a mapping or list belongs.
      const bad = row.type.startsWith("mapping") || row.type.startsWith("list") ? 42 : [1];
      const text = JSON.stringify(configWith(row.path, bad, row.when));
      let problems: readonly { path: string; message: string }[] = [];
      try {
        parseConfig(text, "config.yaml", { env: {}, uid: 0, home: "/root" });
      } catch (error) {
        problems = configProblems(error) ?? [];
      }
      const where = row.path.replaceAll("<name>", "x").replaceAll("[]", "[0]");
      const problem = problems.find((p) => p.path === where);
      expect(problem, `no problem reported at ${where}: ${JSON.stringify(problems)}`).toBeDefined();
      const documented = row.messages.some((m) => problem?.message.startsWith(`${m}, got`));
      expect(documented, `${where}: "${problem?.message}" is not in ${row.messages}`).toBe(true);
      checked.push(where);
    }
    expect(checked.length).toBeGreaterThan(40);
  });
});
