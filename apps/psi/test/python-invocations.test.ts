// Every command line of the Python psi's CLI (quickvm/psi: the README's command reference
// and the typer definitions), parsed by this CLI: each is accepted, reaches the same
// command, and gives its options the meaning they had. What each then does is tested where
// the command is (python-compat.test.ts lists the ones that were missing); the full list of
// kept, renamed and dropped options is docs/migrating.md "Command-line compatibility".
import { PassThrough } from "node:stream";
import type { Command } from "commander";
import { describe, expect, it } from "vitest";
import { createApp, type GlobalOptions } from "../src/app.js";
import { createProgram } from "../src/main.js";
import { commandPath } from "../src/reference.js";

interface Parsed {
  path: string;
  args: unknown[];
  options: Record<string, unknown>;
  globals: GlobalOptions;
}

/** Parses argv with every command's action replaced by a recorder (nothing runs). */
async function parse(argv: string[], env: Record<string, string> = {}): Promise<Parsed> {
  const app = createApp(
    { stdout: new PassThrough(), stderr: new PassThrough(), stdin: new PassThrough() },
    env,
    1000,
  );
  const program = await createProgram(app, argv);
  let parsed: Parsed | undefined;
  const record = (command: Command) => {
    for (const child of command.commands) {
      if (child.commands.length > 0) record(child);
      else
        child.action((...args: unknown[]) => {
          parsed = {
            path: commandPath(child),
            args: args.slice(0, -2),
            options: child.opts(),
            globals: app.globals(),
          };
        });
    }
  };
  record(program);
  program.exitOverride();
  await program.parseAsync(argv, { from: "user" });
  if (!parsed) throw new Error(`no command ran for ${argv.join(" ")}`);
  return parsed;
}

const C = ["-c", "/etc/psi/config.yaml"];
type Row = [argv: string[], path: string, expected: Record<string, unknown>, args?: unknown[]];

const ROWS: Row[] = [
  // top level
  [["setup", ...C], "setup", {}],
  [["setup", "--provider", "infisical"], "setup", { provider: "infisical" }],
  [
    ["setup", "--provider", "nitrokeyhsm", "--dry-run"],
    "setup",
    { provider: "nitrokeyhsm", dryRun: true },
  ],
  [["serve", "--config", "/etc/psi/config.yaml"], "serve", {}],
  [["install", ...C], "install", {}],
  [["install", "--stdout"], "install", { stdout: true }],
  // Podman's shell driver
  [["secret", "store", ...C], "secret store", {}],
  [["secret", "lookup", ...C], "secret lookup", {}],
  [["secret", "delete", ...C], "secret delete", {}],
  [["secret", "list", ...C], "secret list", {}],
  // systemd
  [["systemd", "install", "--mode", "native"], "systemd install", { mode: "native" }],
  [
    [
      "systemd",
      "install",
      "--mode",
      "container",
      "--image",
      "ghcr.io/quickvm/psi:latest",
      "--enable",
      ...C,
    ],
    "systemd install",
    { mode: "container", image: "ghcr.io/quickvm/psi:latest", enable: true },
  ],
  // cache
  [["cache", "init", "--backend", "tpm"], "cache init", { backend: "tpm" }],
  [["cache", "init", "--backend", "hsm", ...C], "cache init", { backend: "hsm" }],
  [["cache", "status"], "cache status", {}],
  [["cache", "status", "--verify"], "cache status", { verify: true }],
  [["cache", "refresh", ...C], "cache refresh", {}],
  [
    ["cache", "invalidate", "myapp--DATABASE_URL"],
    "cache invalidate",
    {},
    [["myapp--DATABASE_URL"]],
  ],
  // infisical
  [["infisical", "login", ...C], "infisical login", {}],
  [
    ["infisical", "env", "--project", "myproject", "--path", "/mypath"],
    "infisical env",
    { project: "myproject", path: "/mypath" },
  ],
  [
    [
      "infisical",
      "env",
      "--project",
      "p",
      "--path",
      "/x",
      "--environment",
      "staging",
      "--format",
      "export",
    ],
    "infisical env",
    { project: "p", path: "/x", environment: "staging", format: "export" },
  ],
  [
    ["infisical", "env", "--project", "p", "--format", "env"],
    "infisical env",
    { path: "/", format: "env" },
  ],
  [
    [
      "infisical",
      "write-file",
      "TLS_CERT",
      "/etc/x/cert.pem",
      "--project",
      "p",
      "--secret-path",
      "/tls",
      "--base64",
      "--mode",
      "0644",
    ],
    "infisical write-file",
    { project: "p", secretPath: "/tls", base64: true, mode: "0644" },
    ["TLS_CERT", "/etc/x/cert.pem"],
  ],
  [
    ["infisical", "write-file", "K", "/tmp/k", "--project", "p"],
    "infisical write-file",
    { mode: "0600", path: "/" },
    ["K", "/tmp/k"],
  ],
  [["infisical", "tls", "issue", ...C], "infisical tls issue", {}],
  [["infisical", "tls", "renew"], "infisical tls renew", {}],
  [
    ["infisical", "tls", "status", "--json", "--timer", "psi-tls-renew.timer"],
    "infisical tls status",
    { timer: "psi-tls-renew.timer" },
  ],
  [
    ["infisical", "import", "env-file", ".env", "--project", "myproject", "--path", "/myapp"],
    "infisical import env-file",
    { project: "myproject", path: "/myapp", conflict: "fail" },
    [".env"],
  ],
  [
    [
      "infisical",
      "import",
      "env-file",
      "--project",
      "p",
      "--environment",
      "dev",
      "--conflict",
      "overwrite",
      "--dry-run",
      "--json",
    ],
    "infisical import env-file",
    { environment: "dev", conflict: "overwrite", dryRun: true },
    [undefined],
  ],
  [
    [
      "infisical",
      "import",
      "podman-secret",
      "--name",
      "a",
      "--name",
      "b",
      "--project",
      "p",
      "--conflict",
      "skip",
    ],
    "infisical import podman-secret",
    { name: ["a", "b"], conflict: "skip" },
    [[]],
  ],
  [
    ["infisical", "import", "podman-secret", "--all", "--project", "myproject", "--path", "/myapp"],
    "infisical import podman-secret",
    { all: true },
  ],
  [
    [
      "infisical",
      "import",
      "quadlet",
      "/etc/containers/systemd/a.container",
      "b.container",
      "--project",
      "p",
      "--path",
      "/myapp",
      "--resolve-secrets",
    ],
    "infisical import quadlet",
    { resolveSecrets: true },
    [["/etc/containers/systemd/a.container", "b.container"]],
  ],
  // nitrokeyhsm
  [["nitrokeyhsm", "preflight", ...C], "nitrokeyhsm preflight", {}],
  [["nitrokeyhsm", "init"], "nitrokeyhsm init", {}],
  [["nitrokeyhsm", "store", "MY_SECRET"], "nitrokeyhsm store", {}, ["MY_SECRET"]],
  [["nitrokeyhsm", "test-pin"], "nitrokeyhsm test-pin", {}],
  [["nitrokeyhsm", "status", ...C], "nitrokeyhsm status", {}],
  [["nitrokeyhsm", "setup-pcscd"], "nitrokeyhsm setup-pcscd", {}],
  [
    [
      "nitrokeyhsm",
      "setup-pcscd",
      "--build-dir",
      "/opt/psi/pcscd",
      "--systemd-dir",
      "/etc/containers/systemd",
      "--build-only",
    ],
    "nitrokeyhsm setup-pcscd",
    { buildDir: "/opt/psi/pcscd", systemdDir: "/etc/containers/systemd", buildOnly: true },
  ],
];

describe("every Python psi command line parses to the same command and options", () => {
  it.each(ROWS)("psi %j", async (argv, path, expected, args) => {
    const parsed = await parse(argv);
    expect(parsed.path).toBe(path);
    expect(parsed.options).toMatchObject(expected);
    if (args) expect(parsed.args).toEqual(args);
    if (argv.includes("-c") || argv.includes("--config"))
      expect(parsed.globals.config).toBe("/etc/psi/config.yaml");
  });

  it.each([
    [["--log-level", "DEBUG", "setup"], {}, { logLevel: "debug" }],
    [["--log-level", "WARNING", "setup"], {}, { logLevel: "warn" }],
    [["--log-level", "ERROR", "--log-json", "setup"], {}, { logLevel: "error", logJson: true }],
    [["setup"], { PSI_LOG_LEVEL: "INFO", PSI_LOG_JSON: "1" }, { logLevel: "info", logJson: true }],
    [["setup"], { PSI_LOG_JSON: "false" }, { logJson: false }],
    [["setup"], { PSI_CONFIG: "/srv/psi.yaml" }, {}],
  ] as const)("psi %j with %j: globals %j", async (argv, env, expected) => {
    const parsed = await parse([...argv], { ...env });
    expect(parsed.globals).toMatchObject(expected);
  });
});
