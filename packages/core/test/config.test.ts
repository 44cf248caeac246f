import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import {
  cachePath,
  configPath,
  configProblems,
  createLogger,
  formatYamlPath,
  isPsiError,
  keyFilePath,
  type LoadedConfig,
  loadConfig,
  makeContext,
  PsiError,
  parseConfig,
  tpmKeyPath,
} from "../src/index.js";
import { tempDir } from "./helpers/tmp.js";

const fixtures = fileURLToPath(new URL("./fixtures/config/", import.meta.url));
const fixture = (name: string) => join(fixtures, name);
const env = { HOME: "/home/alice" };
const HINT = "fix the keys listed above (every key is described in docs/configuration.md)";
const TOP =
  "top-level keys: scope, state_dir, systemd_dir, ca_cert, socket_token, providers, workloads, cache";

async function loadError(path: string, uid = 0): Promise<PsiError> {
  try {
    await loadConfig({ path, env, uid });
  } catch (error) {
    if (error instanceof PsiError) return error;
    throw error;
  }
  throw new Error(`${path} loaded without error`);
}

function parseError(text: string, options: { env?: Record<string, string> } = {}): PsiError {
  try {
    parseConfig(text, "/etc/psi/config.yaml", { env: options.env ?? env, uid: 0 });
  } catch (error) {
    if (error instanceof PsiError) return error;
    throw error;
  }
  throw new Error("parsed without error");
}

describe("valid configurations", () => {
  it("loads the SPEC §2 examples assembled into one file, with defaults filled in", async () => {
    const file = fixture("valid/spec-system.yaml");
    const loaded = await loadConfig({ path: file, env, uid: 0 });
    expect(loaded.warnings).toEqual([]);
    expect(loaded.file).toBe(file);
    expect(loaded.scope).toBe("system");
    expect(loaded.config).toEqual({
      scope: "system",
      state_dir: "/var/lib/psi",
      systemd_dir: "/etc/containers/systemd",
      ca_cert: "/etc/pki/tls/certs/ca-bundle.crt",
      socket_token: "s3cr3t-token-for-tests",
      providers: {
        infisical: {
          api_url: "https://app.infisical.com",
          verify_ssl: true,
          ca_cert: "/path/ca.pem",
          token: { ttl: 300 },
          auth: {
            method: "universal-auth",
            client_id: "my-client-id",
            client_secret: "my-client-secret",
          },
          projects: {
            myproject: { id: "0d6f2c9a-1b3e-4c5d-8e7f-9a0b1c2d3e4f", environment: "prod" },
            other: {
              id: "5b8e1f0c-2a4d-4b6c-9d8e-0f1a2b3c4d5e",
              environment: "staging",
              auth: { method: "aws-iam", identity_id: "7c9d" },
            },
          },
          tls: {
            certificates: {
              web: {
                project: "myproject",
                profile_id: "3f2e1d0c",
                common_name: "www.example.com",
                alt_names: [
                  { type: "dns_name", value: "example.com" },
                  { type: "ip_address", value: "192.0.2.1" },
                ],
                ttl: "90d",
                key_algorithm: "RSA_2048",
                renew_before: "30d",
                output: {
                  cert: "/etc/pki/web/cert.pem",
                  key: "/etc/pki/web/key.pem",
                  chain: "/etc/pki/web/chain.pem",
                  mode: "0640",
                },
                hooks: ["systemctl reload nginx"],
              },
            },
          },
          endpoints: {
            aws_sts: "https://sts.amazonaws.com/",
            aws_metadata: "http://169.254.169.254",
            aws_ecs_metadata: "http://169.254.170.2",
            gcp_metadata: "http://metadata.google.internal",
            azure_imds: "http://169.254.169.254",
          },
          retry_delays: [5, 10, 20, 40, 60],
          setup_timeout: 30,
          lookup_timeout: 5,
        },
        nitrokeyhsm: {
          pkcs11_module: "/usr/lib64/pkcs11/opensc-pkcs11.so",
          slot: 0,
          key_label: "podman-secrets",
          key_id: "02",
          pin: null,
          public_key_cache: null,
          pcscd_volume: "pcscd-socket",
          oaep_hash: "sha256",
          init_params: null,
        },
        local: {},
      },
      workloads: {
        myapp: {
          provider: "infisical",
          unit: "myapp.container",
          depends_on: ["psi-infisical-setup.service"],
          secrets: [{ project: "myproject", path: "/myapp", recursive: false }],
          on_change: "none",
          allow_empty: false,
        },
        "worker@": {
          provider: "infisical",
          depends_on: [],
          secrets: [{ project: "other", path: "/worker", recursive: true }],
          on_change: "none",
          allow_empty: false,
        },
        signing: {
          provider: "nitrokeyhsm",
          depends_on: [],
          secrets: [],
          on_change: "none",
          allow_empty: false,
        },
      },
      cache: {
        enabled: true,
        backend: "tpm",
        refresh_interval: "1h",
        refresh_randomized_delay: "5m",
      },
    });
    expect(loaded.paths).toEqual({
      config: file,
      configDir: fixtures.replace(/\/$/, "") + "/valid",
      stateDir: "/var/lib/psi",
      systemdDir: "/etc/containers/systemd",
      socket: "/run/psi/psi.sock",
      podmanSocket: "/run/podman/podman.sock",
      unitDir: "/etc/systemd/system",
      containersConfDir: "/etc/containers/containers.conf.d",
    });
    expect(cachePath(loaded)).toBe("/var/lib/psi/cache.enc");
    expect(keyFilePath(loaded)).toBe(join(loaded.paths.configDir, "cache.keyfile"));
    expect(tpmKeyPath(loaded)).toBe(join(loaded.paths.configDir, "cache.key"));
  });

  it("loads a user-scope file: an empty provider block configures it, user paths follow XDG", async () => {
    const file = fixture("valid/user-minimal.yaml");
    const loaded = await loadConfig({
      path: file,
      env: { HOME: "/home/alice", XDG_RUNTIME_DIR: "/run/user/1000" },
      uid: 1000,
    });
    expect(loaded.scope).toBe("user");
    expect(loaded.config.providers).toEqual({ local: {} });
    expect(loaded.config.cache).toEqual({
      enabled: true,
      backend: "keyfile",
      key_file: "~/.config/psi/my.keyfile",
      refresh_interval: "1h",
      refresh_randomized_delay: "5m",
    });
    expect(loaded.paths.stateDir).toBe("/home/alice/.local/share/psi");
    expect(loaded.paths.socket).toBe("/run/user/1000/psi/psi.sock");
    expect(cachePath(loaded)).toBe("/home/alice/.local/share/psi/cache.enc");
    expect(keyFilePath(loaded)).toBe("~/.config/psi/my.keyfile");
  });

  it.each(["valid/empty.yaml", "valid/empty-mapping.yaml"])(
    "%s is a valid configuration",
    async (name) => {
      const loaded = await loadConfig({ path: fixture(name), env, uid: 0 });
      expect(loaded.config).toEqual({ providers: {}, workloads: {} });
      expect(loaded.warnings).toEqual([]);
    },
  );

  it("treats an empty value as not set, as the reference does", () => {
    const { config } = parseConfig(
      "state_dir:\ncache:\nproviders:\n  nitrokeyhsm:\nworkloads:\n",
      "/c.yaml",
      {
        env,
        uid: 0,
      },
    );
    expect(config.state_dir).toBeUndefined();
    expect(config.cache).toBeUndefined();
    expect(config.providers.nitrokeyhsm?.oaep_hash).toBe("sha256");
    expect(config.workloads).toEqual({});
  });

  it("reads YAML 1.1 like PyYAML: yes/no booleans, octal modes, merge keys", () => {
    const text = [
      "providers:",
      "  infisical:",
      "    verify_ssl: no",
      "    auth: &auth { method: gcp, identity_id: g }",
      "    tls:",
      "      certificates:",
      "        web:",
      "          <<: { project: p, profile_id: x }",
      "          common_name: a",
      "          output: { cert: c, key: k, chain: ch, mode: 0600 }",
    ].join("\n");
    const { config } = parseConfig(text, "/c.yaml", { env, uid: 0 });
    expect(config.providers.infisical?.verify_ssl).toBe(false);
    expect(config.providers.infisical?.tls.certificates["web"]?.output.mode).toBe("0600");
    expect(config.providers.infisical?.tls.certificates["web"]?.project).toBe("p");
  });
});

describe("path resolution", () => {
  it("prefers the explicit path, then PSI_CONFIG, then the scope default", () => {
    expect(configPath({ path: "/x/c.yaml", env: { PSI_CONFIG: "/y/c.yaml" }, uid: 0 })).toBe(
      "/x/c.yaml",
    );
    expect(configPath({ env: { PSI_CONFIG: "/y/c.yaml" }, uid: 0 })).toBe("/y/c.yaml");
    expect(configPath({ env: {}, uid: 0 })).toBe("/etc/psi/config.yaml");
    expect(configPath({ env: { HOME: "/home/bob" }, uid: 1001 })).toBe(
      "/home/bob/.config/psi/config.yaml",
    );
    expect(configPath({ env: {}, uid: 1001, home: "/h" })).toBe("/h/.config/psi/config.yaml");
  });

  it("loads from PSI_CONFIG when no path is given", async () => {
    const dir = await tempDir();
    try {
      const file = join(dir.path, "psi.yaml");
      await writeFile(file, "state_dir: /srv/psi\n");
      const loaded = await loadConfig({ env: { PSI_CONFIG: file }, uid: 0 });
      expect(loaded.file).toBe(file);
      expect(loaded.paths.configDir).toBe(dir.path);
      expect(loaded.paths.stateDir).toBe("/srv/psi");
    } finally {
      await dir.cleanup();
    }
  });

  it("finds the user default under HOME", async () => {
    const dir = await tempDir();
    try {
      await mkdir(join(dir.path, ".config", "psi"), { recursive: true });
      await writeFile(join(dir.path, ".config", "psi", "config.yaml"), "systemd_dir: /q\n");
      const loaded = await loadConfig({ env: { HOME: dir.path }, uid: 1234 });
      expect(loaded.file).toBe(join(dir.path, ".config", "psi", "config.yaml"));
      expect(loaded.scope).toBe("user");
      expect(loaded.paths.systemdDir).toBe("/q");
      expect(loaded.paths.socket).toBe("/run/user/1234/psi/psi.sock");
    } finally {
      await dir.cleanup();
    }
  });

  it("says how to create a missing file", async () => {
    const error = await loadError("/nonexistent/psi/config.yaml");
    expect(error.code).toBe("config.missing");
    expect(error.message).toBe("no configuration file at /nonexistent/psi/config.yaml");
    expect(error.hint).toBe(
      [
        "create it (an empty file is valid; --config or PSI_CONFIG point elsewhere), for example:",
        "mkdir -p /nonexistent/psi && cat > /nonexistent/psi/config.yaml <<'EOF'",
        "providers:",
        "  infisical:",
        "    auth: { method: universal-auth, client_id: <client id>, client_secret: <client secret> }",
        "    projects:",
        "      myproject: { id: <project id>, environment: prod }",
        "workloads:",
        "  myapp:",
        "    secrets:",
        "      - { project: myproject, path: /myapp }",
        "EOF",
      ].join("\n"),
    );
  });

  it("the example in the missing-file hint is itself a valid configuration", async () => {
    const error = await loadError("/nonexistent/config.yaml");
    const example = (error.hint ?? "").split("\n").slice(2, -1).join("\n");
    expect(
      parseConfig(example, "/c.yaml", { env, uid: 0 }).config.workloads["myapp"]?.secrets,
    ).toHaveLength(1);
  });

  it("reports a directory given as the file as unreadable", async () => {
    const error = await loadError(fixtures);
    expect(error.code).toBe("config.unreadable");
    expect(error.message).toMatch(/^cannot read the configuration file .*EISDIR/);
  });
});

describe("environment overrides", () => {
  it("PSI_* variables override the top-level scalar keys", () => {
    const text = "scope: system\nstate_dir: /var/lib/psi\nsocket_token: from-file-123\n";
    const loaded = parseConfig(text, "/etc/psi/config.yaml", {
      env: {
        HOME: "/home/alice",
        PSI_SCOPE: "user",
        PSI_STATE_DIR: "/tmp/state",
        PSI_SYSTEMD_DIR: "/tmp/quadlets",
        PSI_CA_CERT: "/tmp/ca.pem",
        PSI_SOCKET_TOKEN: "from-env-456",
      },
      uid: 0,
    });
    expect(loaded.config).toMatchObject({
      scope: "user",
      state_dir: "/tmp/state",
      systemd_dir: "/tmp/quadlets",
      ca_cert: "/tmp/ca.pem",
      socket_token: "from-env-456",
    });
    expect(loaded.scope).toBe("user");
    expect(loaded.paths.stateDir).toBe("/tmp/state");
    expect(loaded.paths.systemdDir).toBe("/tmp/quadlets");
    expect(loaded.paths.unitDir).toBe("/home/alice/.config/systemd/user");
  });

  it("an empty variable does not override", () => {
    const loaded = parseConfig("state_dir: /srv\n", "/c.yaml", {
      env: { PSI_STATE_DIR: "" },
      uid: 0,
    });
    expect(loaded.paths.stateDir).toBe("/srv");
  });

  it("a bad value from the environment names the variable", () => {
    const error = parseError("scope: system\n", { env: { PSI_SCOPE: "global" } });
    expect(error.message).toBe(
      'invalid configuration /etc/psi/config.yaml (1 problem):\n  /etc/psi/config.yaml: scope (set by PSI_SCOPE): expected "system" or "user", got "global"',
    );
    expect(configProblems(error)).toEqual([
      {
        file: "/etc/psi/config.yaml",
        path: "scope",
        env: "PSI_SCOPE",
        message: 'expected "system" or "user", got "global"',
      },
    ]);
  });
});

describe("broken configurations: one exact message each", () => {
  const cases: [string, string][] = [
    [
      "unknown-top-level-key.yaml",
      `2:1: unknown top-level key "workload"; the closest known key is "workloads" (${TOP})`,
    ],
    [
      "wrong-type.yaml",
      '5:12: providers.infisical.token.ttl: expected a number of seconds of at least 1, got "soon"',
    ],
    [
      "bad-auth-method.yaml",
      '4:15: providers.infisical.auth.method: expected one of "universal-auth", "aws-iam", "gcp", "azure", got "oauth"',
    ],
    [
      "missing-client-secret.yaml",
      '3:5: providers.infisical.auth: missing required key "client_secret"',
    ],
    [
      "unknown-project.yaml",
      '11:20: workloads.myapp.secrets[1].project: project "myprojcet" is not configured under providers.infisical.projects (configured: myproject, shared)',
    ],
    [
      "unconfigured-provider.yaml",
      '6:15: workloads.signer.provider: provider "nitrokeyhsm" is not configured under providers (configured: infisical)',
    ],
    [
      "project-without-auth.yaml",
      "5:7: providers.infisical.projects.noauth: project has no auth: add auth: {method: ...} to the project or a global providers.infisical.auth",
    ],
    [
      "yaml-syntax.yaml",
      "4:1: YAML syntax error: Flow sequence in block collection must be sufficiently indented and end with a ]",
    ],
    [
      "bad-oaep-hash.yaml",
      '3:16: providers.nitrokeyhsm.oaep_hash: expected "sha256" or "sha1", got "sha512"',
    ],
    [
      "bad-on-change.yaml",
      '4:16: workloads.myapp.on_change: expected "none" or "restart", got "reload"',
    ],
    [
      "bad-restart-unit.yaml",
      '4:19: workloads.myapp.restart_unit: expected a service unit name such as myapp.service or worker@.service, got "myapp.container"',
    ],
    [
      "bad-duration.yaml",
      '3:21: cache.refresh_interval: expected a duration such as 1h, 30min, 90d or a number of seconds, got "every hour"',
    ],
  ];

  it.each(cases)("%s", async (name, expected) => {
    const file = fixture(`invalid/${name}`);
    const error = await loadError(file);
    expect(error.code).toBe("config.invalid");
    expect(error.message).toBe(`invalid configuration ${file} (1 problem):\n  ${file}:${expected}`);
    expect(error.hint).toBe(HINT);
    expect(configProblems(error)).toHaveLength(1);
  });

  it("reports every problem of a file, in file order, with structured problems", async () => {
    const file = fixture("invalid/many-problems.yaml");
    const error = await loadError(file);
    const lines = [
      '1:8: scope: expected "system" or "user", got "global"',
      "5:7: providers.infisical.projects.myproject: project has no auth: add auth: {method: ...} to the project or a global providers.infisical.auth",
      "6:24: providers.nitrokeyhsm.slot: expected a slot index (0, 1, ...), got -1",
      '6:36: providers.nitrokeyhsm.key_id: expected an even number of hex digits in quotes, such as "02", got "2"',
      '10:20: workloads.myapp.secrets[0].project: project "nope" is not configured under providers.infisical.projects (configured: myproject)',
      '10:37: workloads.myapp.secrets[0].recursive: expected true or false, got "maybe"',
      '11:3: workloads["other/app"]: expected a workload name of letters, digits, "_", ".", ":", "-", optionally ending in "@", got "other/app"',
      '12:15: workloads["other/app"].provider: provider "vault" is not configured under providers (configured: infisical, nitrokeyhsm)',
      '13:87: cache.refresh_randomized_delay: expected a duration such as 1h, 30min, 90d or a number of seconds, got "soon"',
      `14:1: unknown top-level key "extra"; the closest known key is "scope" (${TOP})`,
      `15:1: unknown top-level key "another"; the closest known key is "scope" (${TOP})`,
    ];
    expect(error.message).toBe(
      `invalid configuration ${file} (11 problems):\n${lines.map((l) => `  ${file}:${l}`).join("\n")}`,
    );
    const problems = configProblems(error);
    expect(problems).toHaveLength(11);
    expect(problems?.[4]).toEqual({
      file,
      path: "workloads.myapp.secrets[0].project",
      line: 10,
      column: 20,
      message:
        'project "nope" is not configured under providers.infisical.projects (configured: myproject)',
    });
  });

  it("an unknown key inside a block is a warning naming the closest known key", async () => {
    const file = fixture("unknown-nested-key.yaml");
    const loaded = await loadConfig({ path: file, env, uid: 0 });
    expect(loaded.warnings).toEqual([
      `${file}:3:5: providers.infisical: unknown key "api_ulr" is ignored; the closest known key is "api_url"`,
      `${file}:6:29: providers.infisical.projects.myproject: unknown key "enviroment" is ignored; the closest known key is "environment"`,
      `${file}:9:5: workloads.myapp: unknown key "depends" is ignored; the closest known key is "depends_on"`,
    ]);
    expect(loaded.config.providers.infisical?.api_url).toBe("https://app.infisical.com");
    expect(loaded.config.providers.infisical?.projects["myproject"]?.environment).toBe("prod");
  });
});

describe("more problems", () => {
  const only = (text: string) => {
    const problems = configProblems(parseError(text)) ?? [];
    return problems.map((p) => `${p.line}:${p.column}: ${p.path}: ${p.message}`);
  };

  it("a workload without provider needs infisical configured", () => {
    expect(only("workloads:\n  app: {}\n")).toEqual([
      '2:3: workloads.app: provider "infisical" (the default) is not configured under providers (configured: none)',
    ]);
  });

  it("a list where a mapping belongs", () => {
    expect(only("providers: [infisical]\n")).toEqual([
      "1:12: providers: expected a mapping, got a list",
    ]);
    expect(only("- a\n- b\n")).toEqual([
      "1:1: : expected a mapping of the top-level keys (scope, state_dir, systemd_dir, ca_cert, socket_token, providers, workloads, cache), got a list",
    ]);
  });

  it("an auth block without method, and one that is not a mapping", () => {
    expect(only("providers:\n  infisical:\n    auth: {client_id: x}\n")).toEqual([
      '3:5: providers.infisical.auth: missing required key "method" (expected one of "universal-auth", "aws-iam", "gcp", "azure")',
    ]);
    expect(only("providers:\n  infisical:\n    auth: universal-auth\n")).toEqual([
      '3:11: providers.infisical.auth: expected a mapping with a method (one of "universal-auth", "aws-iam", "gcp", "azure"), got "universal-auth"',
    ]);
  });

  it("never shows the value of a secret key", () => {
    const text =
      "socket_token: [hunter2]\nproviders:\n  nitrokeyhsm: {pin: {x: 424242}}\n  infisical:\n    auth: {method: universal-auth, client_id: 777777, client_secret: 31337}\n";
    expect(parseError(text).message).not.toMatch(/hunter2|424242|777777|31337/);
    const messages = only(text).join("\n");
    expect(messages).toBe(
      [
        "1:15: socket_token: expected a token string, got a list",
        "3:22: providers.nitrokeyhsm.pin: expected a PIN string, got a mapping",
        "5:47: providers.infisical.auth.client_id: expected a non-empty string, got a number",
        "5:70: providers.infisical.auth.client_secret: expected a non-empty string, got a number",
      ].join("\n"),
    );
  });

  it("YAML syntax errors are all reported with positions", () => {
    expect(only("a: [1\nb: {\n")).toHaveLength(2);
  });

  it("a document that is too expensive to expand is refused", () => {
    const bomb = ["a: &a [x, x, x, x, x, x, x, x, x]"];
    for (const [name, prev] of [
      ["b", "a"],
      ["c", "b"],
      ["d", "c"],
      ["e", "d"],
    ]) {
      bomb.push(
        `${name}: &${name} [*${prev}, *${prev}, *${prev}, *${prev}, *${prev}, *${prev}, *${prev}, *${prev}, *${prev}]`,
      );
    }
    const error = parseError(bomb.join("\n"));
    expect(error.message).toBe(
      "invalid configuration /etc/psi/config.yaml (1 problem):\n  /etc/psi/config.yaml:1:1: cannot read the YAML: Excessive alias count indicates a resource exhaustion attack",
    );
  });

  it("duplicate keys are a warning: the last one wins, as in PyYAML", () => {
    const loaded = parseConfig("state_dir: /a\nstate_dir: /b\n", "/c.yaml", { env, uid: 0 });
    expect(loaded.config.state_dir).toBe("/b");
    expect(loaded.warnings).toEqual([
      '/c.yaml:2:1: duplicate key "state_dir": the last one wins (as in the reference)',
    ]);
  });

  it("caps the listed problems but keeps all of them structured", () => {
    const text = Array.from({ length: 60 }, (_, i) => `bad${i}: 1`).join("\n");
    const error = parseError(text);
    expect(configProblems(error)).toHaveLength(60);
    expect(error.message.split("\n")).toHaveLength(52);
    expect(error.message.endsWith("\n  ... and 10 more")).toBe(true);
  });
});

describe("helpers", () => {
  it("formatYamlPath writes dots, indexes and brackets for odd keys", () => {
    expect(formatYamlPath(["workloads", "myapp", "secrets", 0, "project"])).toBe(
      "workloads.myapp.secrets[0].project",
    );
    expect(formatYamlPath(["workloads", "a.b", "x y"])).toBe('workloads["a.b"]["x y"]');
    expect(formatYamlPath(["workloads", "web@"])).toBe("workloads.web@");
  });

  it("cache paths follow cache.path and cache.key_file", () => {
    const loaded = parseConfig(
      "cache: {backend: keyfile, path: /data/c.enc, key_file: /keys/k}\n",
      "/etc/psi/config.yaml",
      { env, uid: 0 },
    );
    expect(cachePath(loaded)).toBe("/data/c.enc");
    expect(keyFilePath(loaded)).toBe("/keys/k");
    expect(tpmKeyPath(loaded)).toBe("/etc/psi/cache.key");
  });

  it("makeContext carries config, scope, paths, logger and env", () => {
    const loaded: LoadedConfig = parseConfig("", "/etc/psi/config.yaml", { env, uid: 0 });
    const logger = createLogger({ level: "silent", stream: { write: () => true } });
    const context = makeContext(loaded, { logger, env });
    expect(context).toEqual({
      config: loaded.config,
      scope: "system",
      paths: loaded.paths,
      logger,
      env,
    });
  });

  it("configProblems is undefined for other errors", () => {
    expect(configProblems(new PsiError("config.missing", "x"))).toBeUndefined();
    expect(configProblems(new Error("x"))).toBeUndefined();
    expect(isPsiError(parseError("x: 1"), "config.invalid")).toBe(true);
  });
});
