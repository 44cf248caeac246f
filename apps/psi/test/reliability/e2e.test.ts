import { randomBytes } from "node:crypto";
import { lstat, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough, Readable } from "node:stream";
import { curlAvailable, podmanAvailable } from "@psi/testkit/podman";
import { requireTool } from "@psi/testkit/tmp";
import { unixRequest } from "@psi/testkit/unix-http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../../src/main.js";
import { mappingText, PROJECT, type SetupHost, startSetupHost } from "../setup-host.js";

// SPEC §13 reliability and security, end to end: the fake Infisical, a real isolated
// Podman whose shell driver calls a running `psi serve` (built CLI), `psi setup`,
// `psi local store` and `psi install` in-process, lookups the way `podman create` does
// them. Then: lookups keep answering from the cache while Infisical is down, slow or
// failing; every secret-holding file is 0600; and no secret value is anywhere on disk or
// in any log except the file Podman writes for the container.

const skip =
  requireTool(podmanAvailable(), "podman", "podman") ||
  requireTool(curlAvailable(), "curl", "curl");

// Distinctive per run, so a hit can only come from this test.
const tag = randomBytes(6).toString("hex");
const SECRETS = {
  "/app": {
    DB_PASSWORD: `pw-${tag}-Zq9!canary`,
    API_KEY: `ak ${tag} ünïcødé-canary`,
    MULTI: `first-line-${tag}\nsecond-line-${tag}`,
  },
};
const LOCAL_VALUE = `local-${tag}-sealed-canary`;
const INFISICAL_VALUES = Object.values(SECRETS["/app"]);
const ALL_VALUES = [...INFISICAL_VALUES, LOCAL_VALUE];
const LOOKUP_TIMEOUT_S = 2;

/** Every way a value could sit in a file or a log: raw, base64 (at any alignment), hex. */
function needles(value: string): { how: string; bytes: Buffer }[] {
  const raw = Buffer.from(value, "utf8");
  const out = [
    { how: "raw", bytes: raw },
    { how: "hex", bytes: Buffer.from(raw.toString("hex")) },
    { how: "HEX", bytes: Buffer.from(raw.toString("hex").toUpperCase()) },
    { how: "json-escaped", bytes: Buffer.from(JSON.stringify(value).slice(1, -1)) },
  ];
  // Inside a longer base64 text the value's bytes start at offset 0, 1 or 2 of a 3-byte
  // group: encode with that much padding in front and keep only the characters that
  // depend on the value alone.
  for (const shift of [0, 1, 2]) {
    for (const [how, encoding] of [
      ["base64", "base64"],
      ["base64url", "base64url"],
    ] as const) {
      const text = Buffer.concat([Buffer.alloc(shift), raw]).toString(encoding);
      const start = shift === 0 ? 0 : shift === 1 ? 2 : 3;
      const usable = text.slice(start, start + Math.floor((raw.length - 3) / 3) * 4);
      if (usable.length >= 12) out.push({ how: `${how}+${shift}`, bytes: Buffer.from(usable) });
    }
  }
  return out;
}

async function walk(dir: string, out: string[] = []): Promise<string[]> {
  let entries: import("node:fs").Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) await walk(path, out);
    else if (entry.isFile()) out.push(path);
  }
  return out;
}

interface Finding {
  where: string;
  value: string;
  how: string;
}

function scanBytes(where: string, bytes: Buffer): Finding[] {
  const found: Finding[] = [];
  for (const value of ALL_VALUES) {
    for (const needle of needles(value)) {
      if (bytes.includes(needle.bytes))
        found.push({ where, value: `#${ALL_VALUES.indexOf(value)}`, how: needle.how });
    }
  }
  return found;
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

describe.skipIf(skip)("end to end: outage, file modes, no plaintext on disk", () => {
  let host: SetupHost;
  let config: string;
  const started = Date.now();
  /** Everything printed or logged in this file's runs (scanned at the end). */
  const logs: { where: string; text: string }[] = [];
  /** Podman secret name → ID. */
  const ids = new Map<string, string>();

  async function cli(
    args: string[],
    stdin = "",
    extraEnv: Record<string, string> = {},
  ): Promise<Run> {
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    stdout.on("data", (chunk: Buffer) => out.push(chunk));
    stderr.on("data", (chunk: Buffer) => err.push(chunk));
    const code = await runCli(args, {
      io: { stdout, stderr, stdin: Readable.from([Buffer.from(stdin)]) },
      env: { ...host.env, PSI_CONFIG: config, ...extraEnv },
      uid: process.getuid?.() ?? 1000,
    });
    const run = {
      code,
      stdout: Buffer.concat(out).toString("utf8"),
      stderr: Buffer.concat(err).toString("utf8"),
    };
    logs.push({ where: `psi ${args.join(" ")}`, text: run.stdout + run.stderr });
    return run;
  }

  beforeAll(async () => {
    host = await startSetupHost(SECRETS);
    config = await host.writeConfig(
      "main",
      {
        app: { secrets: [{ project: PROJECT.name, path: "/app" }] },
        vault: { provider: "local" },
      },
      { lookup_timeout: LOOKUP_TIMEOUT_S },
    );
    await host.startServe();
  });

  afterAll(async () => {
    await host?.stop();
  });

  it("setup registers and caches the Infisical secrets; a local secret is sealed; podman create resolves all", async () => {
    const run = await host.setup(["--log-level", "debug"]);
    logs.push({ where: "psi setup", text: run.stdout + run.stderr });
    expect(run.code, run.stderr).toBe(0);
    expect(run.result.cache).toMatchObject({ status: "written", entries: 3 });

    const stored = await cli(
      [
        "--json",
        "--log-level",
        "debug",
        "local",
        "store",
        "--podman-socket",
        host.sandbox.socketPath,
        "vault--LOCAL",
      ],
      LOCAL_VALUE,
    );
    expect(stored.code, stored.stderr).toBe(0);

    const listed = await host.sandbox.run(["secret", "ls", "--format", "{{.ID}} {{.Name}}"]);
    for (const line of listed.stdout.trim().split("\n")) {
      const [id, name] = line.split(" ");
      ids.set(name!, id!);
    }
    expect([...ids.keys()].sort()).toEqual([
      "app--API_KEY",
      "app--DB_PASSWORD",
      "app--MULTI",
      "vault--LOCAL",
    ]);
    for (const [key, value] of Object.entries(SECRETS["/app"])) {
      expect(await host.lookup(`app--${key}`)).toBe(value);
    }
    expect(await host.lookup("vault--LOCAL")).toBe(LOCAL_VALUE);
  });

  const outages: [string, (h: SetupHost) => Promise<void> | void][] = [
    ["down", (h) => h.fake.down()],
    ["slow beyond lookup_timeout", (h) => h.fake.slow((LOOKUP_TIMEOUT_S + 3) * 1000)],
    ["answering 503", (h) => h.fake.fail5xx(503)],
    ["answering 500", (h) => h.fake.fail5xx(500)],
  ];
  for (const [what, breakIt] of outages) {
    it(`lookups keep answering from the cache while Infisical is ${what}`, async () => {
      // A mapping that was never cached: its lookup must reach Infisical and fail,
      // which shows the provider really is unusable during the test.
      const uncachedId = `ffff${tag}0000000000000`.slice(0, 25);
      await writeFile(join(host.stateDir, uncachedId), mappingText("/app", "NOT_CACHED"), {
        mode: 0o600,
      });
      await breakIt(host);
      try {
        for (const [key, value] of Object.entries(SECRETS["/app"])) {
          const answer = await unixRequest(host.socket, {
            path: `/lookup/${ids.get(`app--${key}`)}`,
          });
          expect([key, answer.status, answer.text]).toEqual([key, 200, value]);
        }
        // and through Podman's shell driver (curl), as a container start does it
        expect(await host.lookup("app--DB_PASSWORD")).toBe(SECRETS["/app"].DB_PASSWORD);
        expect(await host.lookup("vault--LOCAL")).toBe(LOCAL_VALUE);

        const miss = await unixRequest(host.socket, { path: `/lookup/${uncachedId}` });
        expect(miss.status).toBe(502);
        expect(JSON.parse(miss.text)).toMatchObject({ error: "provider_error" });
      } finally {
        await host.fake.up();
        host.fake.slow(0);
        host.fake.fail5xx(null);
        await rm(join(host.stateDir, uncachedId));
      }
    });
  }

  it("every file holding a secret or a token is 0600", async () => {
    const token = `tok-${tag}-0123456789`;
    const installed = await cli(["install"], "", { PSI_SOCKET_TOKEN: token });
    expect(installed.code, installed.stderr).toBe(0);
    const conf = join(host.dir, "home", ".config", "containers", "containers.conf.d", "psi.conf");
    expect(await readFile(conf, "utf8")).toContain(`Bearer ${token}`);

    const files = await walk(host.stateDir);
    const names = files.map((file) => file.slice(host.stateDir.length + 1));
    // mappings (one per Podman secret), the cache and Infisical's token cache are all here
    for (const id of ids.values()) expect(names).toContain(id);
    expect(names).toContain("cache.enc");
    expect(names.some((name) => /^\.token\.[0-9a-f]{12}\.json$/.test(name))).toBe(true);
    const modes: Record<string, string> = {};
    for (const file of [...files, join(host.dir, "cache.keyfile"), conf]) {
      modes[file] = ((await stat(file)).mode & 0o777).toString(8);
    }
    expect(Object.entries(modes).filter(([, mode]) => mode !== "600")).toEqual([]);
  });

  it("no secret value on disk or in any log, except the file Podman writes for the container", async () => {
    const findings: Finding[] = [];
    const allowed: Finding[] = [];
    const containerSecret = (path: string) =>
      path.startsWith(host.sandbox.storage) && path.includes(`${join("userdata", "secrets")}/`);

    // the host's whole tree: state_dir, config and key, drop-ins, home (psi.conf), runtime
    // dir, and Podman's storage, runroot and containers.conf
    const hostFiles = await walk(host.dir);
    expect(hostFiles.length).toBeGreaterThan(10);
    for (const file of hostFiles) {
      const info = await lstat(file).catch(() => undefined);
      if (!info?.isFile() || info.size > 64 * 1024 * 1024) continue;
      const hits = scanBytes(file, await readFile(file).catch(() => Buffer.alloc(0)));
      (containerSecret(file) ? allowed : findings).push(...hits);
    }
    // temp files anyone wrote under the system temp dir while this file ran
    for (const entry of await readdir(tmpdir()).catch(() => [] as string[])) {
      const path = join(tmpdir(), entry);
      if (path === host.dir) continue;
      for (const file of await walk(path).catch(() => [entry])) {
        const info = await lstat(file).catch(() => undefined);
        if (!info?.isFile() || info.mtimeMs < started || info.size > 16 * 1024 * 1024) continue;
        findings.push(...scanBytes(file, await readFile(file).catch(() => Buffer.alloc(0))));
      }
    }
    // logs: psi serve's JSON lines, every in-process CLI run
    logs.push({ where: "psi serve log", text: host.serveLog() });
    expect(host.serveLog()).toContain('"event":"listen"');
    for (const { where, text } of logs)
      findings.push(...scanBytes(where, Buffer.from(text, "utf8")));

    expect(findings).toEqual([]);
    // The scan does find values where they are: Podman's copy for each container.
    for (const value of ALL_VALUES) {
      expect(
        allowed.some((hit) => hit.value === `#${ALL_VALUES.indexOf(value)}` && hit.how === "raw"),
      ).toBe(true);
    }
  });
});
