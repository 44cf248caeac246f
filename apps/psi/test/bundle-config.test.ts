// The bundle (dist/cli.js) compiles `yaml` in from its ES module build (tsup.config.ts),
// while the packages and these in-process runs use its Node build. Both must read every
// configuration alike: the same values, the same warnings, the same errors at the same
// lines. Each case runs `psi --json cache status` both ways and compares everything.
import { spawnSync } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { tempDir } from "@psi/testkit/tmp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runPsi } from "./run-psi.js";

const CLI = fileURLToPath(new URL("../dist/cli.js", import.meta.url));

const CASES: Record<string, (dir: string) => string> = {
  // YAML 1.1 as PyYAML reads it: yes/on booleans, flow style.
  "yaml 1.1 booleans": (dir) => `
cache: { enabled: yes, backend: keyfile }
serve: { allow_insecure_dirs: off }
state_dir: ${dir}/state
`,
  // api gets web's secrets through the merge: the problems listed for it show it did.
  "anchors and << merges": (dir) => `
workloads:
  web: &w
    secrets: [{ project: p, path: /x }]
  api:
    <<: *w
cache: { enabled: on, backend: keyfile }
state_dir: ${dir}/state
`,
  "unknown keys and a duplicate key are warnings": (dir) => `
state_dir: ${dir}/state
state_dir: ${dir}/state
cache: { enabled: true, backend: keyfile, colour: blue }
spare: 1
`,
  "a schema error names the key and its line": (dir) => `
state_dir: ${dir}/state
cache:
  enabled: maybe
  backend: 7
`,
  "a syntax error names its line": () => `
cache:
  enabled: [true
backend: keyfile
`,
  "an alias bomb is refused": () =>
    `a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n`,
  "an empty file": () => "",
};

describe("the bundle reads configurations exactly as the packages do", () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  beforeAll(async () => {
    dir = await tempDir("psi-bundle-config-");
    await mkdir(join(dir.path, "xdg"), { recursive: true });
  });
  afterAll(async () => {
    await dir?.cleanup();
  });

  for (const [name, text] of Object.entries(CASES)) {
    it(name, async () => {
      const config = join(dir.path, `${name.replaceAll(" ", "-")}.yaml`);
      await writeFile(config, text(dir.path), { mode: 0o600 });
      const env = {
        PATH: process.env["PATH"] ?? "/usr/bin:/bin",
        HOME: dir.path,
        XDG_CACHE_HOME: join(dir.path, "xdg"),
        PSI_CONFIG: config,
        PSI_LOG_JSON: "1",
      };
      const argv = ["--json", "cache", "status"];
      const bundle = spawnSync(process.execPath, [CLI, ...argv], { env, encoding: "utf8" });
      const source = await runPsi(argv, { env, uid: process.getuid?.() ?? 1000 });
      const timeless = (text: string) => text.replace(/"(time|ts)":"[^"]*"/g, '"$1":""');
      expect({
        code: bundle.status,
        stdout: bundle.stdout,
        stderr: timeless(bundle.stderr),
      }).toEqual({ code: source.code, stdout: source.stdout, stderr: timeless(source.stderr) });
      // Not vacuous: each case produced output to compare.
      expect(bundle.stdout.length + bundle.stderr.length).toBeGreaterThan(0);
    });
  }
});
