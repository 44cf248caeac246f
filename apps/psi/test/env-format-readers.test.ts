// `psi infisical env --format env` is read by three real parsers, and each must get every
// value back exactly: bash's `source`, systemd's env-file parser (the one behind
// EnvironmentFile=, reached here through ConditionOSRelease= on a bind-mounted
// /etc/os-release, since no systemd runs as PID 1) and python-dotenv (what podman-compose
// reads `.env` with). Values Compose cannot read back are named on stderr instead.
import { execFileSync, spawnSync } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { requireTool } from "@psi/testkit/tmp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type InfisicalWorld, infisicalWorld } from "./infisical-helpers.js";

const VALUES: Record<string, string> = {
  PLAIN: "plain-value_1.2",
  SPACES: "two words  and\ttab",
  DOLLAR: "$HOME $(id -u) `id` $((1+1))",
  QUOTE: `it's "quoted"`,
  BACKSLASH: "C:\\path\\to\\n and \\\\ and \\t",
  TRAILING_BACKSLASH: "ends with \\",
  NEWLINES: "line one\nline two\n",
  QUOTE_NEWLINE: "it's\nmulti",
  HASH: "a #not a comment",
  UNICODE: "é 😀 ünï",
  EMPTY: "",
  // Compose (python-dotenv) reads these two differently; bash and systemd get them exactly.
  // biome-ignore lint/suspicious/noTemplateCurlyInString: the literal text is the point
  BRACE: "${PATH} stays",
  QUOTE_DOLLAR: "it's $(id)",
};
const COMPOSE_CAVEATS = ["BRACE", "QUOTE_DOLLAR"];

function has(command: string, args: string[]): boolean {
  return spawnSync(command, args, { stdio: "ignore" }).status === 0;
}
const noSystemd = requireTool(
  has("systemd-analyze", ["--version"]) && has("unshare", ["-m", "true"]),
  "systemd-analyze and unshare -m (root)",
  "systemd",
);
const noDotenv = requireTool(
  has("/usr/bin/python3", ["-c", "import dotenv"]),
  "python-dotenv",
  "python3-dotenv",
);

let world: InfisicalWorld;
let file: string;
let stderr: string;
beforeAll(async () => {
  world = await infisicalWorld();
  for (const [key, value] of Object.entries(VALUES)) world.put("/app", key, value);
  const run = await world.psi([
    "infisical",
    "env",
    "--project",
    "app",
    "--path",
    "/app",
    "--format",
    "env",
  ]);
  expect(run.code, run.err).toBe(0);
  file = join(world.dir, "app.env");
  await writeFile(file, run.out);
  stderr = run.err;
});
afterAll(async () => {
  await world?.cleanup();
});

describe("--format env", () => {
  it("bash `source` (set -a) reads every value back and runs nothing", () => {
    const keys = Object.keys(VALUES);
    const out = execFileSync(
      "bash",
      [
        "-c",
        // biome-ignore lint/suspicious/noTemplateCurlyInString: bash's ${!k}, not a template
        'set -a; source "$1"; shift; for k in "$@"; do printf "%s\\0" "${!k}"; done',
        "bash",
        file,
        ...keys,
      ],
      { encoding: "utf8", env: { PATH: process.env["PATH"] ?? "/usr/bin:/bin", HOME: "/nohome" } },
    );
    const values = out.split("\0").slice(0, -1);
    expect(Object.fromEntries(keys.map((key, i) => [key, values[i]]))).toEqual(VALUES);
  });

  it.skipIf(noSystemd)("systemd's env-file parser reads every value back", () => {
    // ConditionOSRelease=KEY=VALUE compares VALUE with what systemd parsed from os-release;
    // the condition itself is unquoted by systemd (\\ and \" inside "...").
    const script =
      'mount --bind "$1" /etc/os-release || exit 9; shift; for c in "$@"; do ' +
      'if systemd-analyze condition "$c" >/dev/null 2>&1; then echo ok; else echo FAIL; fi; done';
    // An empty value cannot be compared with "=": "does not match ?*" (empty or unset) it is.
    const conditions = Object.entries(VALUES).map(([key, value]) =>
      value === ""
        ? `ConditionOSRelease=${key}!$=?*`
        : `ConditionOSRelease="${key}=${value.replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`,
    );
    const control = 'ConditionOSRelease="PLAIN=something else"';
    const out = execFileSync(
      "unshare",
      ["-m", "sh", "-c", script, "sh", file, ...conditions, control],
      {
        encoding: "utf8",
      },
    );
    const results = out.trim().split("\n");
    expect(Object.fromEntries(Object.keys(VALUES).map((key, i) => [key, results[i]]))).toEqual(
      Object.fromEntries(Object.keys(VALUES).map((key) => [key, "ok"])),
    );
    // The comparison can fail: a different value does not match.
    expect(results.at(-1)).toBe("FAIL");
  });

  it.skipIf(noDotenv)(
    "Compose's parser (python-dotenv) reads back all but the named values",
    () => {
      const out = execFileSync(
        "/usr/bin/python3",
        [
          "-c",
          "import json,sys,dotenv; print(json.dumps(dotenv.dotenv_values(sys.argv[1])))",
          file,
        ],
        { encoding: "utf8", env: { PATH: "/usr/bin:/bin", HOME: "/nohome" } },
      );
      const read = JSON.parse(out) as Record<string, string | null>;
      for (const [key, value] of Object.entries(VALUES)) {
        if (COMPOSE_CAVEATS.includes(key)) expect(read[key], key).not.toBe(value);
        else expect(read[key], key).toBe(value);
      }
      // Exactly those are named on stderr, by key and never by value.
      for (const key of Object.keys(VALUES)) {
        const named = stderr.includes(`"key":"${key}"`);
        expect(named, key).toBe(COMPOSE_CAVEATS.includes(key));
      }
      expect(stderr).not.toContain("stays");
    },
  );
});
