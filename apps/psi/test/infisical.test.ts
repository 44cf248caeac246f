import { execFileSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { mkdir, readdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  CLIENT_SECRET,
  type InfisicalWorld,
  infisicalWorld,
  PROJECT_ID,
} from "./infisical-helpers.js";

let world: InfisicalWorld;
beforeEach(async () => {
  world = await infisicalWorld();
});
afterEach(async () => {
  await world.cleanup();
});

const NASTY: Record<string, string> = {
  QUOTES: `it's "quoted" '' ""`,
  NEWLINES: "line one\nline two\n\n",
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a literal ${VAR} is the point
  DOLLAR: "$HOME ${PATH} $(id -u) $((1+1))",
  BACKTICKS: "`id` and \\` and \\\\",
  MIXED: "'\\''\"$`\\\n\t end",
  UNICODE: "é 😀 ünïcödé",
  EMPTY: "",
};

/** Every value a test stored: none may appear where it was not asked for. */
function expectNoValues(text: string, values: Iterable<string>): void {
  for (const value of values) if (value.length >= 6) expect(text).not.toContain(value);
  expect(text).not.toContain(CLIENT_SECRET);
}

const mode = async (path: string) => (await stat(path)).mode & 0o777;

describe("psi infisical login", () => {
  it("logs in with every configured auth and reports each project", async () => {
    await world.writeConfig(
      `    projects:
      app: { id: ${PROJECT_ID} }
      other: { id: ${PROJECT_ID}, auth: { method: universal-auth, client_id: cli-client-id, client_secret: ${CLIENT_SECRET} } }
`,
    );
    const result = await world.psi(["infisical", "login"]);
    expect(result.code).toBe(0);
    expect(result.out).toMatch(/^ok\s+app\s+universal-auth \(global\)\s+token valid until/m);
    expect(result.out).toMatch(/^ok\s+other\s+universal-auth \(project\)/m);
    expect(result.out).toContain("logged in: 2 projects");
    expectNoValues(result.out + result.err, []);
    // The token cache is written (a dot file in state_dir).
    expect(
      (await readdir(world.stateDir)).filter((name) => name.startsWith(".token.")),
    ).toHaveLength(1);
  });

  it("exits 1 when any auth fails, naming the project", async () => {
    await world.writeConfig(
      `    projects:
      app: { id: ${PROJECT_ID} }
      broken: { id: ${PROJECT_ID}, auth: { method: universal-auth, client_id: cli-client-id, client_secret: wrong-secret-value } }
`,
    );
    const result = await world.psi(["--json", "infisical", "login"]);
    expect(result.code).toBe(1);
    const checks = JSON.parse(result.out) as Array<{
      project: string;
      ok: boolean;
      error?: { code: string };
    }>;
    expect(checks.map((check) => [check.project, check.ok])).toEqual([
      ["app", true],
      ["broken", false],
    ]);
    expect(checks[1]?.error?.code).toBe("provider.auth_failed");
    expectNoValues(result.out + result.err, ["wrong-secret-value"]);
  });
});

describe("psi infisical env", () => {
  beforeEach(() => {
    for (const [key, value] of Object.entries(NASTY)) world.put("/app", key, value);
    world.put("/app", "not-a-shell-name", "dash-value");
  });

  it("--format shell round-trips every value through bash eval", async () => {
    const result = await world.psi([
      "infisical",
      "env",
      "--project",
      "app",
      "--path",
      "/app",
      "--format",
      "shell",
    ]);
    expect(result.code).toBe(0);
    for (const [key, value] of Object.entries(NASTY)) {
      const echoed = execFileSync("bash", ["-c", `eval "$(cat)"; printf %s "$${key}"`], {
        input: result.out,
        encoding: "utf8",
      });
      expect(echoed, key).toBe(value);
    }
    // The eval defines exactly the shell-safe keys; the other one is skipped on stderr, by name.
    expect(result.out).not.toContain("not-a-shell-name");
    expect(result.err).toContain("skipped not-a-shell-name: not a valid shell variable name");
    expectNoValues(result.err, ["dash-value", ...Object.values(NASTY)]);
  });

  it("--format env writes dotenv lines that import env-file reads back exactly", async () => {
    const result = await world.psi([
      "infisical",
      "env",
      "--project",
      "app",
      "--path",
      "/app",
      "--format",
      "env",
    ]);
    expect(result.code).toBe(0);
    expect(result.out).toContain("not-a-shell-name=dash-value\n");
    const file = join(world.dir, "exported.env");
    await writeFile(file, result.out);
    const imported = await world.psi([
      "infisical",
      "import",
      "env-file",
      file,
      "--project",
      "app",
      "--path",
      "/copy",
    ]);
    expect(imported.code).toBe(0);
    for (const [key, value] of Object.entries(NASTY)) {
      // Infisical trims values on write (its API does); everything else comes back as written.
      const trimmed = value.at(-1) === "\n" ? `${value.trim()}\n` : value.trim();
      expect(world.get("/copy", key), key).toBe(trimmed);
    }
  });

  it("--format json (also the default with --json)", async () => {
    const result = await world.psi([
      "--json",
      "infisical",
      "env",
      "--project",
      "app",
      "--path",
      "/app",
    ]);
    expect(result.code).toBe(0);
    expect(JSON.parse(result.out)).toEqual({ ...NASTY, "not-a-shell-name": "dash-value" });
  });

  it("an unknown project is one clear error, exit 1", async () => {
    const result = await world.psi(["infisical", "env", "--project", "nope", "--path", "/app"]);
    expect(result.code).toBe(1);
    expect(result.out).toBe("");
    expect(result.err).toContain('Infisical project "nope" is not configured');
    expect(result.err).toContain(
      "hint: add it under providers.infisical.projects (configured: app)",
    );
    expect(result.err).not.toContain("    at ");
  });

  it("an auth failure is exit 1 without the credentials", async () => {
    await world.writeConfig(
      `    projects:
      app: { id: ${PROJECT_ID}, auth: { method: universal-auth, client_id: cli-client-id, client_secret: not-the-secret } }
`,
    );
    const result = await world.psi(["infisical", "env", "--project", "app", "--path", "/app"]);
    expect(result.code).toBe(1);
    expect(result.err).toContain("auth failed for project app");
    expect(result.out).toBe("");
    expectNoValues(result.err, ["not-the-secret", ...Object.values(NASTY)]);
  });

  it("--format must be one of shell, env, json (usage error)", async () => {
    const result = await world.psi(["infisical", "env", "--project", "app", "--format", "yaml"]);
    expect(result.code).toBe(2);
  });
});

describe("psi infisical write-file", () => {
  it("writes exactly the value with mode 0600, or the given mode, atomically", async () => {
    world.put("/app", "TLS_KEY", NASTY["MIXED"]!);
    const target = join(world.dir, "out", "secret.txt");
    await mkdir(join(world.dir, "out"));
    const result = await world.psi([
      "infisical",
      "write-file",
      "TLS_KEY",
      target,
      "--project",
      "app",
      "--path",
      "/app",
    ]);
    expect(result.code).toBe(0);
    expect(result.out).toContain(`wrote TLS_KEY to ${target}`);
    expect(await readFile(target, "utf8")).toBe(NASTY["MIXED"]);
    expect(await mode(target)).toBe(0o600);
    const again = await world.psi([
      "infisical",
      "write-file",
      "TLS_KEY",
      target,
      "--project",
      "app",
      "--path",
      "/app",
      "--mode",
      "0640",
    ]);
    expect(again.code).toBe(0);
    expect(await mode(target)).toBe(0o640);
    expect(await readdir(join(world.dir, "out"))).toEqual(["secret.txt"]);
    expectNoValues(result.out + result.err + again.out + again.err, [NASTY["MIXED"]!]);
  });

  it("an unwritable target, a missing key and a bad mode are clear errors", async () => {
    world.put("/app", "K", "value-of-k");
    await writeFile(join(world.dir, "file"), "");
    const unwritable = await world.psi([
      "infisical",
      "write-file",
      "K",
      join(world.dir, "file", "below"),
      "--project",
      "app",
      "--path",
      "/app",
    ]);
    expect(unwritable.code).toBe(1);
    expect(unwritable.err).toContain(`cannot write ${join(world.dir, "file", "below")}`);
    const missing = await world.psi([
      "infisical",
      "write-file",
      "GONE",
      join(world.dir, "x"),
      "--project",
      "app",
      "--path",
      "/app",
    ]);
    expect(missing.code).toBe(1);
    expect(missing.err).toContain("secret GONE not found at path /app in project app");
    const badMode = await world.psi([
      "infisical",
      "write-file",
      "K",
      join(world.dir, "x"),
      "--project",
      "app",
      "--mode",
      "rw",
    ]);
    expect(badMode.code).toBe(1);
    expect(badMode.err).toContain('"rw" is not an octal file mode');
    expectNoValues(unwritable.err + missing.err + badMode.err, ["value-of-k"]);
  });
});

describe("psi infisical import", () => {
  it("env-file: creates folders and keys, reports per key, never values", async () => {
    const file = join(world.dir, "app.env");
    await writeFile(file, "DB_HOST=db.internal\nDB_PASSWORD='s3cr3t p4ss'\n# note\nbroken line\n");
    const result = await world.psi([
      "infisical",
      "import",
      "env-file",
      file,
      "--project",
      "app",
      "--path",
      "/team/app",
    ]);
    expect(result.code).toBe(0);
    expect(result.out).toContain("import into project app (prod) at /team/app");
    expect(result.out).toContain("created folder /team");
    expect(result.out).toMatch(/created\s+DB_PASSWORD\s+.*app\.env:2/);
    expect(result.out).toContain("2 keys: 2 created");
    expect(result.err).toContain("app.env:4: not a KEY=value line; skipped");
    expect(world.get("/team/app", "DB_PASSWORD")).toBe("s3cr3t p4ss");
    expectNoValues(result.out + result.err, ["s3cr3t p4ss", "db.internal"]);
  });

  it("--conflict fail exits 1 and writes nothing; skip and overwrite do what they say", async () => {
    world.put("/app", "DB_HOST", "old-host");
    const file = join(world.dir, "app.env");
    await writeFile(file, "DB_HOST=new-host\nDB_USER=new-user\n");
    const args = ["infisical", "import", "env-file", file, "--project", "app", "--path", "/app"];
    const failed = await world.psi(args);
    expect(failed.code).toBe(1);
    expect(failed.out).toMatch(/FAILED\s+DB_HOST\s+.*exists at \/app \(--conflict fail\)/);
    expect(world.get("/app", "DB_USER")).toBeUndefined();

    const dry = await world.psi([...args, "--conflict", "overwrite", "--dry-run"]);
    expect(dry.code).toBe(0);
    expect(dry.out).toContain("dry run, nothing written");
    expect(dry.out).toMatch(/would overwrite\s+DB_HOST/);
    expect(world.get("/app", "DB_HOST")).toBe("old-host");

    const skip = await world.psi(["--json", ...args, "--conflict", "skip"]);
    expect(skip.code).toBe(0);
    const report = JSON.parse(skip.out) as { counts: Record<string, number>; results: unknown[] };
    expect(report.counts).toMatchObject({ created: 1, skipped: 1 });
    expect(world.get("/app", "DB_HOST")).toBe("old-host");

    const overwrite = await world.psi([...args, "--conflict", "overwrite"]);
    expect(overwrite.code).toBe(0);
    expect(overwrite.out).toMatch(/overwritten\s+DB_HOST/);
    expect(world.get("/app", "DB_HOST")).toBe("new-host");
    expectNoValues(failed.out + dry.out + skip.out + overwrite.out, [
      "new-host",
      "old-host",
      "new-user",
    ]);
  });

  it("shows progress on a terminal only", async () => {
    const file = join(world.dir, "app.env");
    await writeFile(file, "A=1\nB=2\n");
    const tty = await world.psi(["infisical", "import", "env-file", file, "--project", "app"], {
      ttyStderr: true,
    });
    expect(tty.err).toContain("import: 2/2");
    await writeFile(file, "C=3\n");
    const quiet = await world.psi(["infisical", "import", "env-file", file, "--project", "app"]);
    expect(quiet.err).not.toContain("import:");
  });

  it("quadlet: imports Environment= lines with systemd quoting; Secret= needs --resolve-secrets", async () => {
    const file = join(world.dir, "web.container");
    await writeFile(
      file,
      `[Container]
Image=quay.io/example/web
Environment=A=1 "B=two words" C='it''s'
Environment=D=line\\nbreak
Secret=db-password,type=env,target=DB_PASSWORD
[Service]
Environment=NOT_ME=1
`,
    );
    const result = await world.psi([
      "infisical",
      "import",
      "quadlet",
      file,
      "--project",
      "app",
      "--path",
      "/web",
    ]);
    expect(result.code).toBe(0);
    expect(result.out).toContain("4 keys: 4 created");
    expect(world.get("/web", "B")).toBe("two words");
    expect(world.get("/web", "C")).toBe("its");
    expect(world.get("/web", "D")).toBe("line\nbreak");
    expect(world.get("/web", "NOT_ME")).toBeUndefined();
    expect(result.err).toContain("1 Secret= reference not imported (add --resolve-secrets");
  });

  it("a missing input file is one clear error", async () => {
    const result = await world.psi([
      "infisical",
      "import",
      "env-file",
      join(world.dir, "nope.env"),
      "--project",
      "app",
    ]);
    expect(result.code).toBe(1);
    expect(result.err).toContain("cannot read");
  });

  it("podman-secret needs NAMEs or --all (usage error)", async () => {
    const result = await world.psi(["infisical", "import", "podman-secret", "--project", "app"]);
    expect(result.code).toBe(2);
    expect(result.err).toContain("name the Podman secrets to import, or use --all");
  });
});

describe("psi infisical tls", () => {
  async function tlsConfig(hooks: string[]): Promise<string> {
    const pki = join(world.dir, "pki");
    await mkdir(pki, { recursive: true });
    world.fake.addCertificateProfile({ profileId: "prof-1", projectId: PROJECT_ID });
    await world.writeConfig(
      `    projects:
      app: { id: ${PROJECT_ID} }
    tls:
      certificates:
        web:
          project: app
          profile_id: prof-1
          common_name: web.example.test
          alt_names: [{ type: dns_name, value: web.example.test }, { type: ip_address, value: 10.0.0.1 }]
          ttl: 90d
          renew_before: 30d
          output: { cert: ${pki}/cert.pem, key: ${pki}/key.pem, chain: ${pki}/chain.pem, ca: ${pki}/ca.pem, mode: "0644" }
          hooks: ${JSON.stringify(hooks)}
`,
    );
    return pki;
  }

  it("issue writes the files and runs the hooks; status and renew read the expiry", async () => {
    const marker = join(world.dir, "hook-ran");
    const pki = await tlsConfig([`touch ${marker}`]);
    const issued = await world.psi(["infisical", "tls", "issue"]);
    expect(issued.code).toBe(0);
    expect(issued.out).toMatch(
      /^web\s+issued\s+serial [0-9a-f]+, expires .* \(\d+ days left\); hooks: 1 of 1 ok$/m,
    );
    const cert = new X509Certificate(await readFile(join(pki, "cert.pem")));
    expect(cert.subjectAltName).toContain("IP Address:10.0.0.1");
    expect(await mode(join(pki, "key.pem"))).toBe(0o600);
    expect(await mode(join(pki, "cert.pem"))).toBe(0o644);
    expect(await stat(marker)).toBeTruthy();
    expect(await readdir(world.stateDir)).toContain(".tls.web.json");
    expectNoValues(issued.out + issued.err, [
      (await readFile(join(pki, "key.pem"), "utf8")).slice(40, 80),
    ]);

    const status = await world.psi(["infisical", "tls", "status"]);
    expect(status.code).toBe(0);
    expect(status.out).toMatch(/^NAME\s+COMMON NAME\s+EXPIRES\s+DAYS LEFT\s+RENEW DUE$/m);
    expect(status.out).toMatch(/^web\s+web\.example\.test\s+\S+\s+(89|90)\s+no$/m);

    const renew = await world.psi(["infisical", "tls", "renew"]);
    expect(renew.code).toBe(0);
    expect(renew.out).toMatch(/^web\s+skipped\s+not due/m);
    expect(world.fake.certificates).toHaveLength(1);

    const forced = await world.psi(["--json", "infisical", "tls", "renew", "web", "--force"]);
    expect(forced.code).toBe(0);
    expect(JSON.parse(forced.out)).toMatchObject([{ name: "web", action: "renewed" }]);
    expect(world.fake.certificates[1]?.renewedFrom).toBe(world.fake.certificates[0]?.certificateId);
  });

  it("a failing hook is exit 1 after the files are written", async () => {
    const pki = await tlsConfig(["false"]);
    const result = await world.psi(["infisical", "tls", "issue"]);
    expect(result.code).toBe(1);
    expect(result.out).toMatch(
      /^web\s+FAILED\s+certificate web: hook "false" failed: false exited with status 1/m,
    );
    expect(result.out).toContain("1 of 1 certificate failed");
    expect(await stat(join(pki, "cert.pem"))).toBeTruthy();
  });

  it("a request waiting for approval is pending (exit 1, nothing written) until renew deploys it", async () => {
    const pki = await tlsConfig([]);
    world.fake.requireCertificateApproval(true);
    const pending = await world.psi(["infisical", "tls", "issue"]);
    expect(pending.code).toBe(1);
    expect(pending.out).toMatch(
      /^web\s+pending\s+request [0-9a-f-]{36} is pending_approval in Infisical; approve it there, then `psi infisical tls renew web` deploys it$/m,
    );
    await expect(stat(join(pki, "cert.pem"))).rejects.toMatchObject({ code: "ENOENT" });
    await world.fake.approveCertificates();
    const renewed = await world.psi(["infisical", "tls", "renew"]);
    expect(renewed.code).toBe(0);
    expect(renewed.out).toMatch(/^web\s+issued\s+serial [0-9a-f]+/m);
    expect(await stat(join(pki, "cert.pem"))).toBeTruthy();
    world.fake.requireCertificateApproval(false);
  });

  it("an unknown certificate name is exit 1; no certificates is a note", async () => {
    await tlsConfig([]);
    const unknown = await world.psi(["infisical", "tls", "renew", "nope"]);
    expect(unknown.code).toBe(1);
    expect(unknown.err).toContain("no certificate named nope");
    await world.writeConfig(`    projects:\n      app: { id: ${PROJECT_ID} }\n`);
    const none = await world.psi(["infisical", "tls", "renew"]);
    expect(none.code).toBe(0);
    expect(none.out).toContain("no certificates configured");
  });
});
