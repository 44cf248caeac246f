import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { configProblems, PsiError, parseConfig, parseMapping } from "../src/index.js";

const FILE = "/etc/psi/config.yaml";

/** parseConfig either returns or throws a config.invalid PsiError that lists its problems. */
function checkConfig(text: string): void {
  try {
    const loaded = parseConfig(text, FILE, { env: { HOME: "/home/u" }, uid: 1000 });
    expect(typeof loaded.config.workloads).toBe("object");
    for (const warning of loaded.warnings) expect(warning.startsWith(`${FILE}:`)).toBe(true);
  } catch (error) {
    if (!(error instanceof PsiError)) throw error;
    expect(error.code).toBe("config.invalid");
    const problems = configProblems(error) ?? [];
    expect(problems.length).toBeGreaterThan(0);
    for (const problem of problems) {
      expect(problem.file).toBe(FILE);
      expect(problem.message.length).toBeGreaterThan(0);
      if (problem.env === undefined) expect(problem.line).toBeGreaterThanOrEqual(1);
    }
    expect(error.message.startsWith(`invalid configuration ${FILE} (`)).toBe(true);
  }
}

const KEYS = [
  "scope",
  "state_dir",
  "providers",
  "infisical",
  "nitrokeyhsm",
  "local",
  "auth",
  "method",
  "client_id",
  "client_secret",
  "identity_id",
  "projects",
  "id",
  "workloads",
  "secrets",
  "project",
  "provider",
  "path",
  "cache",
  "backend",
  "refresh_interval",
  "oaep_hash",
  "tls",
  "certificates",
  "output",
  "mode",
  "__proto__",
  "constructor",
];

const SCALARS = fc.oneof(
  fc.constantFrom(
    "universal-auth",
    "aws-iam",
    "tpm",
    "sha1",
    "1h",
    "infisical",
    "local",
    "p",
    "0640",
    "",
    null,
    true,
  ),
  fc.string(),
  fc.integer(),
  fc.double(),
  fc.boolean(),
);

/** Values shaped like a configuration: known keys, wrong types in the wrong places. */
const configLike = fc.letrec<{ node: unknown }>((tie) => ({
  node: fc.oneof(
    { depthSize: "small" },
    SCALARS,
    fc.array(tie("node"), { maxLength: 4 }),
    fc.dictionary(fc.oneof(fc.constantFrom(...KEYS), fc.string()), tie("node"), { maxKeys: 5 }),
  ),
})).node;

const TOKENS = [
  "providers:",
  "workloads:",
  "infisical:",
  "auth:",
  "method: universal-auth",
  "projects:",
  "  ",
  "    ",
  "- ",
  "{",
  "}",
  "[",
  "]",
  ", ",
  "&a ",
  "*a",
  "<<: ",
  "!!binary ",
  "!!omap",
  "!!set",
  "!tag ",
  "? ",
  ": ",
  "\n",
  "'",
  '"',
  "# c",
  "|",
  ">-",
  "%YAML 1.2\n",
  "---\n",
  "...\n",
  "0640",
  "0x1F",
  "1:30",
  "~",
  "yes",
  "\t",
  "\\",
  "é",
  "😀",
];

describe("parseConfig never throws anything but PsiError, never hangs", () => {
  it("on arbitrary text", () => {
    fc.assert(fc.property(fc.string({ unit: "binary", maxLength: 300 }), checkConfig), {
      numRuns: 400,
    });
  });

  it("on YAML-flavoured token soup", () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...TOKENS), { maxLength: 60 }), (tokens) =>
        checkConfig(tokens.join("")),
      ),
      { numRuns: 600 },
    );
  });

  it("on configuration-shaped documents", () => {
    fc.assert(
      fc.property(configLike, (value) => {
        checkConfig(stringify(value));
        checkConfig(stringify(value, { collectionStyle: "flow" }));
      }),
      { numRuns: 400 },
    );
  });

  it("on arbitrary YAML documents", () => {
    fc.assert(
      fc.property(fc.anything(), (value) => checkConfig(stringify(value))),
      { numRuns: 300 },
    );
  });

  it("on deeply nested and oversized input", () => {
    checkConfig("[".repeat(100_000));
    checkConfig("{".repeat(100_000));
    checkConfig(`${"- ".repeat(5_000)}x`);
    checkConfig(Array.from({ length: 1_000 }, (_, i) => `${" ".repeat(i)}k${i}:`).join("\n"));
    checkConfig(
      `workloads:\n${Array.from({ length: 2_000 }, (_, i) => `  w${i}: {secrets: [{project: p${i}}]}`).join("\n")}`,
    );
    checkConfig(`cache: {refresh_interval: "${"1".repeat(50_000)}x"}`);
  });
});

describe("parseMapping never throws anything but PsiError", () => {
  const check = (input: string | Uint8Array) => {
    try {
      const mapping = parseMapping(input, "state_dir/x");
      expect(typeof mapping.provider).toBe("string");
      expect(mapping.provider.length).toBeGreaterThan(0);
    } catch (error) {
      if (!(error instanceof PsiError)) throw error;
      expect(error.code).toBe("mapping.corrupt");
      expect(error.message.startsWith("state_dir/x ")).toBe(true);
    }
  };

  it("on arbitrary bytes and text", () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), check), { numRuns: 300 });
    fc.assert(fc.property(fc.string({ unit: "binary" }), check), { numRuns: 300 });
  });

  it("on arbitrary JSON, with and without a provider", () => {
    fc.assert(fc.property(fc.json(), check), { numRuns: 300 });
    fc.assert(
      fc.property(
        fc.dictionary(fc.string(), fc.jsonValue()),
        fc.jsonValue(),
        (object, provider) => {
          check(JSON.stringify({ ...object, provider }));
        },
      ),
      { numRuns: 300 },
    );
  });
});
