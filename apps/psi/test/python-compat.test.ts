// Invocations written for the Python psi (quickvm/psi) keep working: each row is one
// command line an existing script or unit runs, and what it must do here. The full list of
// kept, renamed and dropped options is docs/migrating.md "Command-line compatibility".
import { execFileSync } from "node:child_process";
import { readFile, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type InfisicalWorld, infisicalWorld, PROJECT_ID } from "./infisical-helpers.js";

let world: InfisicalWorld;
beforeEach(async () => {
  world = await infisicalWorld();
  world.put("/app", "DB_PASSWORD", "it's $HOME");
  world.put("/app", "CERT_B64", Buffer.from("\x00\x01binary\xff", "latin1").toString("base64"));
  world.fake.addFolder({ projectId: PROJECT_ID, environment: "staging", path: "/" });
  world.fake.setSecret({
    projectId: PROJECT_ID,
    environment: "staging",
    path: "/app",
    key: "DB_PASSWORD",
    value: "staging-password",
  });
});
afterEach(async () => {
  await world.cleanup();
});

const mode = async (path: string) => (await stat(path)).mode & 0o777;

describe("Python psi invocations", () => {
  it("infisical env --format export (the Python default) prints export lines bash can eval", async () => {
    for (const argv of [
      ["infisical", "env", "--project", "app", "--path", "/app", "--format", "export"],
      ["infisical", "env", "--project", "app", "--path", "/app"],
      ["infisical", "env", "--project", "app", "--path=/app", "--format=export"],
    ]) {
      const run = await world.psi(argv);
      expect(run.code, argv.join(" ")).toBe(0);
      // The Python psi printed exactly this form: export KEY='value' with ' as '\''.
      expect(run.out).toContain(`export DB_PASSWORD='it'\\''s $HOME'\n`);
      const echoed = execFileSync("bash", ["-c", `eval "$(cat)"; printf %s "$DB_PASSWORD"`], {
        input: run.out,
        encoding: "utf8",
      });
      expect(echoed).toBe("it's $HOME");
    }
  });

  it("infisical env --environment reads another environment of the project", async () => {
    const run = await world.psi([
      "infisical",
      "env",
      "--project",
      "app",
      "--path",
      "/app",
      "--environment",
      "staging",
      "--format",
      "env",
    ]);
    expect(run.code).toBe(0);
    expect(run.out).toBe("DB_PASSWORD=staging-password\n");
  });

  it("infisical write-file --secret-path --base64 into a directory that does not exist yet", async () => {
    const target = join(world.dir, "run", "app", "cert.der");
    const run = await world.psi([
      "infisical",
      "write-file",
      "CERT_B64",
      target,
      "--project",
      "app",
      "--secret-path",
      "/app",
      "--base64",
      "--mode",
      "0640",
    ]);
    expect(run.code, run.err).toBe(0);
    expect(await readFile(target)).toEqual(Buffer.from("\x00\x01binary\xff", "latin1"));
    expect(await mode(target)).toBe(0o640);
    expect(await mode(join(world.dir, "run", "app"))).toBe(0o755);
  });

  it("write-file --base64 of a value that is not base64 is a clear error and writes nothing", async () => {
    const target = join(world.dir, "out", "x");
    const run = await world.psi([
      "infisical",
      "write-file",
      "DB_PASSWORD",
      target,
      "--project",
      "app",
      "--path",
      "/app",
      "--base64",
    ]);
    expect(run.code).toBe(1);
    expect(run.err).toContain("secret DB_PASSWORD is not valid base64");
    expect(run.err).toContain("hint: drop --base64");
    await expect(stat(target)).rejects.toThrow();
  });

  it("infisical import env-file - (and no FILE) reads stdin", async () => {
    for (const argv of [
      ["infisical", "import", "env-file", "-", "--project", "app", "--path", "/from-stdin"],
      ["infisical", "import", "env-file", "--project", "app", "--path", "/from-stdin-2"],
    ]) {
      const run = await world.psi(argv, { stdin: "A=one\nB='two words'\n" });
      expect(run.code, `${argv.join(" ")}: ${run.err}`).toBe(0);
      const path = argv.at(-1)!;
      expect(world.get(path, "A")).toBe("one");
      expect(world.get(path, "B")).toBe("two words");
      expect(run.out).toContain("stdin:2");
    }
  });

  it("infisical import env-file --environment --dry-run --json --conflict skip", async () => {
    const file = join(world.dir, "in.env");
    await writeFile(file, "DB_PASSWORD=x\nNEW=y\n");
    const run = await world.psi([
      "infisical",
      "import",
      "env-file",
      file,
      "--project",
      "app",
      "--path",
      "/app",
      "--environment",
      "staging",
      "--conflict",
      "skip",
      "--dry-run",
      "--json",
    ]);
    expect(run.code, run.err).toBe(0);
    const report = JSON.parse(run.out) as {
      environment: string;
      dry_run: boolean;
      results: Array<{ key: string; outcome: string }>;
    };
    expect(report.environment).toBe("staging");
    expect(report.dry_run).toBe(true);
    expect(report.results.map((r) => [r.key, r.outcome])).toEqual([
      ["DB_PASSWORD", "skipped"],
      ["NEW", "created"],
    ]);
    expect(world.get("/app", "NEW")).toBeUndefined();
  });

  it("infisical tls status --timer NAME is accepted (the timer shows when systemd answers)", async () => {
    const run = await world.psi(["infisical", "tls", "status", "--timer", "psi-tls-renew.timer"]);
    expect(run.code, run.err).toBe(0);
    expect(run.out).toContain("no certificates configured");
    const bad = await world.psi(["infisical", "tls", "status", "--timer"]);
    expect(bad.code).toBe(2);
  });

  it("--config/-c is accepted after the subcommand, as every Python command took it", async () => {
    for (const argv of [
      ["infisical", "env", "--project", "app", "--path", "/app", "-c", world.config],
      ["infisical", "env", "--project", "app", "--path", "/app", "--config", world.config],
    ]) {
      const run = await world.psi(argv);
      expect(run.code, argv.join(" ")).toBe(0);
    }
  });
});

describe("logging options of the Python psi", () => {
  const env = ["infisical", "env", "--project", "app", "--path", "/app"];
  // Each run logs in afresh (a debug line) when no token is cached from the run before.
  const psi: InfisicalWorld["psi"] = async (argv, options) => {
    await rm(world.stateDir, { recursive: true, force: true });
    return world.psi(argv, options);
  };

  it("--log-json and PSI_LOG_JSON=1 write JSON lines even on a terminal", async () => {
    for (const [argv, extra] of [
      [["--log-json", "--log-level", "debug", ...env], {}],
      [["--log-level", "debug", ...env], { PSI_LOG_JSON: "1" }],
      [["--log-level", "debug", ...env], { PSI_LOG_JSON: "true" }],
    ] as const) {
      const run = await psi([...argv], { ttyStderr: true, env: { ...extra } });
      expect(run.code).toBe(0);
      const lines = run.err.trim().split("\n");
      expect(lines.length).toBeGreaterThan(0);
      for (const line of lines) expect(JSON.parse(line)).toHaveProperty("level");
    }
    const human = await psi(["--log-level", "debug", ...env], {
      ttyStderr: true,
      env: { PSI_LOG_JSON: "0" },
    });
    expect(human.err).toMatch(/^\d\d:\d\d:\d\d\.\d{3} DEBUG /m);
  });

  it("PSI_LOG_LEVEL and --log-level take the Python names in any case", async () => {
    const quiet = await psi(env);
    expect(quiet.err).not.toContain('"level":"debug"');
    for (const [argv, extra] of [
      [env, { PSI_LOG_LEVEL: "debug" }],
      [env, { PSI_LOG_LEVEL: "DEBUG" }],
      [["--log-level", "DEBUG", ...env], {}],
      [["--log-level", "TRACE", ...env], {}],
    ] as const) {
      const run = await psi([...argv], { env: { ...extra } });
      expect(run.code).toBe(0);
      expect(run.err).toContain('"level":"debug"');
    }
    for (const level of ["WARNING", "warning", "ERROR", "CRITICAL", "INFO", "warn"]) {
      const run = await psi(["--log-level", level, ...env]);
      expect(run.code, level).toBe(0);
      expect(run.err, level).not.toContain('"level":"debug"');
    }
    const flagWins = await psi(["--log-level", "error", ...env], {
      env: { PSI_LOG_LEVEL: "debug" },
    });
    expect(flagWins.err).not.toContain('"level":"debug"');
  });

  it("an unknown level is a usage error naming the value", async () => {
    const flag = await psi(["--log-level", "loud", ...env]);
    expect(flag.code).toBe(2);
    expect(flag.err).toContain("expected debug, info, warn (warning) or error");
    const fromEnv = await psi(env, { env: { PSI_LOG_LEVEL: "loud" } });
    expect(fromEnv.code).toBe(2);
    expect(fromEnv.err).toContain("PSI_LOG_LEVEL=loud is not a log level");
  });
});
