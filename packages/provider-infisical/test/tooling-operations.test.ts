import { readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { ConfigSchema, defaultPaths, isPsiError, type PsiContext } from "@psi/core";
import * as v from "valibot";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  importEnvFile,
  infisicalEnv,
  infisicalLogin,
  infisicalSettings,
  infisicalTls,
  infisicalWriteFile,
  readQuadletImport,
} from "../src/index.js";
import {
  CLIENT_ID,
  CLIENT_SECRET,
  type FakeWorld,
  fakeWorld,
  memoryLogger,
  PROJECT_ID,
} from "./helpers.js";

// The `psi infisical` operations over a PsiContext, against the fake Infisical and real
// files: what any frontend (the CLI, a deployment script) gets from them.

let world: FakeWorld;
let logger: ReturnType<typeof memoryLogger>;
beforeEach(async () => {
  world = await fakeWorld();
  world.fake.addFolder({ projectId: PROJECT_ID, environment: "prod", path: "/" });
  logger = memoryLogger();
});
afterEach(async () => {
  await world.cleanup();
});

function context(infisical: Record<string, unknown> | null = {}): PsiContext {
  const config = v.parse(ConfigSchema, {
    state_dir: world.stateDir,
    ...(infisical === null
      ? {}
      : {
          providers: {
            infisical: {
              api_url: world.fake.url,
              auth: {
                method: "universal-auth",
                client_id: CLIENT_ID,
                client_secret: CLIENT_SECRET,
              },
              projects: { app: { id: PROJECT_ID, environment: "prod" } },
              retry_delays: [0.01],
              setup_timeout: 2,
              ...infisical,
            },
          },
        }),
  });
  return {
    config,
    scope: "user",
    paths: { ...defaultPaths("user", {}, 1000, world.stateDir), stateDir: world.stateDir },
    logger,
    env: {},
  };
}

/** The PsiError code a promise rejects with. */
async function code(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise;
  } catch (error) {
    return isPsiError(error) ? error.code : `not a PsiError: ${String(error)}`;
  }
  return undefined;
}

const logged = () => logger.lines.map((line) => `${line.level} ${line.msg}`).join("\n");

describe("infisicalSettings", () => {
  it("is the providers.infisical block, or provider.not_configured with a hint", () => {
    expect(infisicalSettings(context()).projects["app"]?.id).toBe(PROJECT_ID);
    try {
      infisicalSettings(context(null));
      expect.unreachable();
    } catch (error) {
      expect(isPsiError(error, "provider.not_configured")).toBe(true);
      expect((error as { hint?: string }).hint).toContain("providers.infisical");
    }
  });
});

describe("infisicalLogin", () => {
  it("reports each project's login and refuses a block with nothing to log in with", async () => {
    const checks = await infisicalLogin(context());
    expect(checks).toMatchObject([{ project: "app", auth: "global", ok: true }]);
    expect(checks[0]?.expiresAt).toBeGreaterThan(Date.now() / 1000);
    expect(await code(infisicalLogin(context({ auth: undefined, projects: {} })))).toBe(
      "provider.not_configured",
    );
    expect(world.fake.logins()).toBe(1);
  });
});

describe("infisicalEnv", () => {
  it("formats a folder, logs skipped keys without values, reads another environment", async () => {
    world.put("/app", "GOOD", "good-value-1");
    world.put("/app", "bad.name", "bad-value-2");
    world.put("/app", "GOOD", "staging-value-3", "staging");
    const shell = await infisicalEnv(context(), { project: "app", path: "/app", format: "shell" });
    expect(shell.text).toBe("export GOOD='good-value-1'\n");
    expect(shell.skipped.map((s) => s.key)).toEqual(["bad.name"]);
    expect(logged()).toMatch(/^warn skipped bad\.name: /m);
    expect(logged()).not.toContain("value-");

    const staging = await infisicalEnv(context(), {
      project: "app",
      path: "/app",
      environment: "staging",
      format: "json",
    });
    expect(JSON.parse(staging.text)).toEqual({ GOOD: "staging-value-3" });
  });
});

describe("infisicalWriteFile", () => {
  it("writes the value with the mode from creation; base64 writes the decoded bytes", async () => {
    world.put("/", "TOKEN", "s3cret");
    world.put("/", "BLOB", Buffer.from([0, 1, 2, 255]).toString("base64"));
    const file = join(world.stateDir, "out", "token");
    const written = await infisicalWriteFile(context(), {
      project: "app",
      path: "/",
      key: "TOKEN",
      file,
      mode: 0o640,
    });
    expect(written).toEqual({ file, mode: 0o640, bytes: 6 });
    expect(await readFile(file, "utf8")).toBe("s3cret");
    expect((await stat(file)).mode & 0o777).toBe(0o640);

    const blob = join(world.stateDir, "blob");
    await infisicalWriteFile(context(), {
      project: "app",
      path: "/",
      key: "BLOB",
      file: blob,
      mode: 0o600,
      base64: true,
    });
    expect([...(await readFile(blob))]).toEqual([0, 1, 2, 255]);
  });
});

describe("importEnvFile", () => {
  const target = { project: "app", path: "/imported", conflict: "fail" as const };

  it("imports a file's KEY=value lines, logging its warnings, with progress", async () => {
    const file = join(world.stateDir, "app.env");
    await writeFile(file, "A=1\nnot a line\nB='two words'\n");
    const progress: string[] = [];
    const run = await importEnvFile(context(), {
      ...target,
      file,
      stdin: Readable.from([]),
      onProgress: ({ done, total }) => progress.push(`${done}/${total}`),
    });
    expect(run.ok).toBe(true);
    expect(run.counts.created).toBe(2);
    expect(run.warnings).toEqual([expect.stringMatching(new RegExp(`^${file}:2: `))]);
    expect(logged()).toContain(`warn ${file}:2: `);
    expect(progress.at(-1)).toBe("2/2");
    expect(
      world.fake.getSecret({
        projectId: PROJECT_ID,
        environment: "prod",
        path: "/imported",
        key: "B",
      }),
    ).toBe("two words");
  });

  it("reads stdin for - or no file; an unreadable file is input.unreadable, nothing written", async () => {
    const run = await importEnvFile(context(), {
      ...target,
      file: "-",
      stdin: Readable.from([Buffer.from("FROM_STDIN=yes\n")]),
    });
    expect(run.results).toMatchObject([{ key: "FROM_STDIN", source: "stdin:1" }]);

    const before = world.fake.requests.length;
    expect(
      await code(
        importEnvFile(context(), {
          ...target,
          file: join(world.stateDir, "missing.env"),
          stdin: Readable.from([]),
        }),
      ),
    ).toBe("input.unreadable");
    expect(world.fake.requests.length).toBe(before);
  });
});

describe("readQuadletImport", () => {
  it("reads quadlet files into items and references, logging what is not imported", async () => {
    const file = join(world.stateDir, "db.container");
    await writeFile(file, "[Container]\nEnvironment=USER=app\nSecret=db,type=env,target=PW\n");
    const source = await readQuadletImport(context(), [file]);
    expect(source.items).toEqual([{ key: "USER", value: "app", source: `${file}:2` }]);
    expect(source.references).toEqual([{ name: "db", key: "PW", source: `${file}:3 Secret=db` }]);
    expect(logged()).toContain("1 Secret= reference not imported");
    expect(await code(readQuadletImport(context(), [join(world.stateDir, "nope")]))).toBe(
      "input.unreadable",
    );
  });
});

describe("infisicalTls", () => {
  it("is undefined without certificates, else a manager over the configured ones", async () => {
    expect(infisicalTls(context())).toBeUndefined();
    const manager = infisicalTls(
      context({
        tls: {
          certificates: {
            web: {
              project: "app",
              profile_id: "profile-web",
              common_name: "web.example.test",
              output: {
                cert: join(world.stateDir, "cert.pem"),
                key: join(world.stateDir, "key.pem"),
                chain: join(world.stateDir, "chain.pem"),
              },
            },
          },
        },
      }),
    );
    expect(manager).toBeDefined();
    const statuses = await manager!.status([]);
    expect(statuses).toMatchObject([{ name: "web", present: false, renewDue: true }]);
  });
});
