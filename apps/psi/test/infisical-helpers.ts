import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { PassThrough, Readable } from "node:stream";
import { type FakeInfisical, startFakeInfisical } from "@psi/testkit/fake-infisical";
import { tempDir } from "@psi/testkit/tmp";
import { runCli } from "../src/main.js";

export const PROJECT_ID = "6f1d3c2a-0000-4000-8000-00000000a001";
export const CLIENT_ID = "cli-client-id";
export const CLIENT_SECRET = "cli-client-secret-do-not-print";

/** A fake Infisical with one identity, a temp dir, a config file and an in-process `psi`. */
export async function infisicalWorld() {
  const fake = await startFakeInfisical();
  fake.addUniversalAuth({ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, identityId: "cli" });
  fake.addFolder({ projectId: PROJECT_ID, environment: "prod", path: "/" });
  const dir = await tempDir("psi-infisical-cli-");
  const config = join(dir.path, "config.yaml");
  const stateDir = join(dir.path, "state");

  /** Writes the config: the app project, plus `extra` YAML under providers.infisical. */
  async function writeConfig(extra = "", top = ""): Promise<void> {
    await writeFile(
      config,
      `state_dir: ${stateDir}
${top}providers:
  infisical:
    api_url: ${fake.url}
    setup_timeout: 5
    retry_delays: [0.01]
    auth: { method: universal-auth, client_id: ${CLIENT_ID}, client_secret: ${CLIENT_SECRET} }
${extra}`,
    );
  }
  await writeConfig("    projects:\n      app: { id: " + PROJECT_ID + ", environment: prod }\n");

  return {
    fake,
    dir: dir.path,
    config,
    stateDir,
    writeConfig,
    put(path: string, key: string, value: string) {
      fake.setSecret({ projectId: PROJECT_ID, environment: "prod", path, key, value });
    },
    get(path: string, key: string) {
      return fake.getSecret({ projectId: PROJECT_ID, environment: "prod", path, key });
    },
    /** Runs `psi -c <config> ...argv` in-process as at a terminal; stdout and stderr as text. */
    async psi(
      argv: string[],
      options: {
        env?: Record<string, string>;
        ttyStderr?: boolean;
        stdin?: string;
        /** stdout is a terminal (default): reports are tables; false: they are JSON. */
        tty?: boolean;
      } = {},
    ) {
      const stdout = Object.assign(new PassThrough(), { isTTY: options.tty ?? true });
      const stderr = Object.assign(new PassThrough(), { isTTY: options.ttyStderr === true });
      let out = "";
      let err = "";
      stdout.on("data", (chunk: Buffer) => {
        out += chunk;
      });
      stderr.on("data", (chunk: Buffer) => {
        err += chunk;
      });
      const code = await runCli(["-c", config, ...argv], {
        io: {
          stdout,
          stderr,
          stdin: Readable.from(options.stdin === undefined ? [] : [Buffer.from(options.stdin)]),
        },
        env: {
          PATH: process.env["PATH"] ?? "/usr/bin:/bin",
          HOME: join(dir.path, "home"),
          XDG_RUNTIME_DIR: join(dir.path, "xdg"),
          ...options.env,
        },
        uid: 0,
      });
      return { code, out, err };
    },
    async cleanup() {
      await fake.stop();
      await dir.cleanup();
    },
  };
}

export type InfisicalWorld = Awaited<ReturnType<typeof infisicalWorld>>;
export type { FakeInfisical };
