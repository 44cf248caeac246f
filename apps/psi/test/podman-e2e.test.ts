import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { request } from "node:http";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { initKeyfile } from "@psi/cache-keyfile";
import { parseMapping } from "@psi/core";
import { createPodmanClient } from "@psi/podman";
import {
  curlAvailable,
  type PodmanSandbox,
  podmanAvailable,
  podmanSandbox,
} from "@psi/testkit/podman";
import { requireTool, tempDir } from "@psi/testkit/tmp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// PSI between a real Podman 4.x and its shell secret driver (TESTING.md): the built CLI
// runs `psi serve`, Podman's containers.conf is what `psi install --stdout` prints, and
// `podman create` resolves secrets through curl on PSI's socket.

const CLI = fileURLToPath(new URL("../dist/cli.js", import.meta.url));
const skip =
  requireTool(podmanAvailable(), "podman", "podman") ||
  requireTool(curlAvailable(), "curl", "curl");

interface Run {
  code: number;
  stdout: Buffer;
  stderr: string;
}

function psi(args: string[], env: NodeJS.ProcessEnv, input?: string | Uint8Array): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env, stdio: ["pipe", "pipe", "pipe"] });
    const out: Buffer[] = [];
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => out.push(chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk;
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? -1, stdout: Buffer.concat(out), stderr }));
    child.stdin.end(input);
  });
}

function socketGet(
  socketPath: string,
  path: string,
  token?: string,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { Host: "localhost" };
    if (token) headers["Authorization"] = `Bearer ${token}`;
    const req = request({ socketPath, path, method: "GET", headers }, (res) => {
      let body = "";
      res.setEncoding("utf8").on("data", (chunk: string) => {
        body += chunk;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

/** Runs one of the driver's command lines from the conf exactly as Podman does: `sh -c` with SECRET_ID. */
function driverCommand(
  conf: string,
  op: string,
  secretId: string,
  input?: Uint8Array,
): Promise<Run> {
  const line = conf.split("\n").find((l) => l.startsWith(`${op} = `));
  if (!line) throw new Error(`no ${op} command in the driver conf`);
  const command = line.slice(op.length + 4, -1);
  return new Promise((resolve, reject) => {
    const child = spawn("sh", ["-c", command], {
      env: { ...process.env, SECRET_ID: secretId },
      stdio: ["pipe", "pipe", "pipe"],
    });
    const out: Buffer[] = [];
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => out.push(chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk;
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? -1, stdout: Buffer.concat(out), stderr }));
    child.stdin.end(input);
  });
}

interface Host {
  dir: string;
  env: NodeJS.ProcessEnv;
  socket: string;
  stateDir: string;
  conf: string;
  sandbox: PodmanSandbox;
  serve: ChildProcess;
  serveLog: () => string;
  stop(): Promise<void>;
}

/** A PSI host: config (local provider, keyfile cache), a running `psi serve`, an isolated Podman. */
async function startHost(options: { token?: string } = {}): Promise<Host> {
  if (!existsSync(CLI)) {
    throw new Error(
      `${CLI} is missing: build the CLI first (pnpm exec turbo run build --filter=@psi/cli...)`,
    );
  }
  const tmp = await tempDir("psi-e2e-");
  const dir = tmp.path;
  const stateDir = join(dir, "state");
  const keyFile = join(dir, "cache.keyfile");
  const socket = join(dir, "psi.sock");
  await mkdir(join(dir, "home"));
  await writeFile(
    join(dir, "config.yaml"),
    `state_dir: ${stateDir}\nproviders:\n  local: {}\ncache:\n  backend: keyfile\n  key_file: ${keyFile}\n` +
      (options.token ? `socket_token: ${options.token}\n` : ""),
    { mode: 0o600 },
  );
  await initKeyfile({ path: keyFile });
  const env: NodeJS.ProcessEnv = {
    PATH: process.env["PATH"],
    HOME: join(dir, "home"),
    XDG_RUNTIME_DIR: join(dir, "run"),
    PSI_CONFIG: join(dir, "config.yaml"),
  };
  const installed = await psi(["install", "--stdout", "--socket", socket], env);
  if (installed.code !== 0) throw new Error(`psi install --stdout failed: ${installed.stderr}`);
  const conf = installed.stdout.toString("utf8");

  let log = "";
  const serve = spawn(process.execPath, [CLI, "serve", "--socket", socket], {
    env,
    stdio: ["ignore", "ignore", "pipe"],
  });
  serve.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
    log += chunk;
  });
  for (let attempt = 0; ; attempt++) {
    if (serve.exitCode !== null) throw new Error(`psi serve exited: ${log}`);
    const ok = await socketGet(socket, "/healthz").then(
      (r) => r.status === 200,
      () => false,
    );
    if (ok) break;
    if (attempt > 400) throw new Error(`psi serve did not answer on ${socket}: ${log}`);
    await sleep(25);
  }
  const sandbox = await podmanSandbox(join(dir, "podman"), conf);
  await sandbox.startService();
  return {
    dir,
    env,
    socket,
    stateDir,
    conf,
    sandbox,
    serve,
    serveLog: () => log,
    async stop() {
      await sandbox.stop();
      if (serve.exitCode === null) {
        const exited = new Promise((resolve) => serve.once("exit", resolve));
        serve.kill("SIGTERM");
        await exited;
      }
      await tmp.cleanup();
    },
  };
}

async function mappingFiles(stateDir: string): Promise<string[]> {
  return (await readdir(stateDir).catch(() => [] as string[])).filter(
    (name) => !name.startsWith(".") && name !== "cache.enc",
  );
}

describe.skipIf(skip)("psi serve as Podman's shell secret driver (real Podman)", () => {
  let host: Host;

  beforeAll(async () => {
    host = await startHost();
  });
  afterAll(async () => {
    await host?.stop();
  });

  it("registers a local secret through the REST API (psi local store) that podman create resolves", async () => {
    const value = "db-pässword\nline two";
    const stored = await psi(
      ["--json", "local", "store", "--podman-socket", host.sandbox.socketPath, "app--DB_PASSWORD"],
      host.env,
      value,
    );
    expect(stored.stderr).toBe("");
    expect(stored.code).toBe(0);
    const { id } = JSON.parse(stored.stdout.toString()) as { id: string };
    const mapping = parseMapping(await readFile(join(host.stateDir, id)));
    expect(mapping.provider).toBe("local");
    expect(JSON.stringify(mapping)).not.toContain("pässword");

    expect((await host.sandbox.createWithSecret("app--DB_PASSWORD")).toString("utf8")).toBe(value);
    expect((await host.sandbox.createWithSecretViaApi("app--DB_PASSWORD")).toString("utf8")).toBe(
      value,
    );
    // Only Podman's own copy for the container holds the plaintext: not state_dir, not the log.
    for (const name of await readdir(host.stateDir)) {
      expect((await readFile(join(host.stateDir, name))).includes(Buffer.from("pässword"))).toBe(
        false,
      );
    }
    expect(host.serveLog()).not.toContain("pässword");
  });

  it("resolves a secret created with the podman CLI from a --mapping-only mapping", async () => {
    const value = Buffer.from([0x00, 0x01, 0xfe, 0xff, 0x0a, 0x41]);
    const mapping = await psi(["local", "store", "--mapping-only", "app--BINARY"], host.env, value);
    expect(mapping.stderr).toBe("");
    expect(mapping.code).toBe(0);
    const created = await host.sandbox.run(
      ["secret", "create", "--driver", "shell", "app--BINARY", "-"],
      mapping.stdout,
    );
    expect(created.stderr).toBe("");
    expect(created.code).toBe(0);
    // The driver's store command (curl) prints the socket's "ok" before Podman prints the ID.
    const id = /([0-9a-f]{25})\s*$/.exec(created.stdout)![1]!;
    expect(await readFile(join(host.stateDir, id))).toEqual(mapping.stdout);
    expect(await host.sandbox.createWithSecret("app--BINARY")).toEqual(value);
  });

  it("replaces a secret on a second store, and the new value is served", async () => {
    await psi(
      ["local", "store", "--podman-socket", host.sandbox.socketPath, "app--ROTATE"],
      host.env,
      "one",
    );
    const before = await mappingFiles(host.stateDir);
    await psi(
      ["local", "store", "--podman-socket", host.sandbox.socketPath, "app--ROTATE"],
      host.env,
      "two",
    );
    expect((await mappingFiles(host.stateDir)).length).toBe(before.length);
    expect((await host.sandbox.createWithSecret("app--ROTATE")).toString()).toBe("two");
  });

  it("podman secret rm reaches /delete: the mapping file is gone", async () => {
    await psi(
      ["local", "store", "--podman-socket", host.sandbox.socketPath, "app--GONE"],
      host.env,
      "bye",
    );
    const podman = createPodmanClient({ socketPath: host.sandbox.socketPath });
    const id = (await podman.inspectSecret("app--GONE"))!.id;
    expect(existsSync(join(host.stateDir, id))).toBe(true);
    const removed = await host.sandbox.run(["secret", "rm", "app--GONE"]);
    expect(removed.code).toBe(0);
    expect(existsSync(join(host.stateDir, id))).toBe(false);
    expect(
      (await host.sandbox.createWithSecret("app--GONE").catch((e: Error) => e)) instanceof Error,
    ).toBe(true);
  });

  it("podman secret ls shows the shell secrets, and the driver's list command answers through /list", async () => {
    const ls = await host.sandbox.run(["secret", "ls", "--format", "{{.Name}} {{.Driver}}"]);
    expect(ls.code).toBe(0);
    expect(ls.stdout).toContain("app--DB_PASSWORD shell");
    const podman = createPodmanClient({ socketPath: host.sandbox.socketPath });
    const ids = (await podman.listSecrets()).map((secret) => secret.id).sort();
    const listed = await driverCommand(host.conf, "list", "");
    expect(listed.code).toBe(0);
    expect(listed.stdout.toString().trim().split("\n").sort()).toEqual(ids);
  });

  it("records the driver options psi install wrote, for setup's drift check", async () => {
    const podman = createPodmanClient({ socketPath: host.sandbox.socketPath });
    const secret = (await podman.listSecrets()).find((s) => s.name === "app--DB_PASSWORD")!;
    expect(secret.driver).toBe("shell");
    expect(secret.driverOptions["lookup"]).toBe(
      `curl -sf --unix-socket ${host.socket} http://localhost/lookup/$SECRET_ID`,
    );
  });

  it("a lookup of an unknown ID fails the driver (curl -f), so podman reports it", async () => {
    const lookup = await driverCommand(host.conf, "lookup", "0000000000000000000000000");
    expect(lookup.code).not.toBe(0);
    expect(lookup.stdout.length).toBe(0);
  });
});

describe.skipIf(skip)("with a socket token (driver conf carries the Authorization header)", () => {
  const token = "e2e-token-0123456789";
  let host: Host;

  beforeAll(async () => {
    host = await startHost({ token });
  });
  afterAll(async () => {
    await host?.stop();
  });

  it("puts the header in every command and serves podman create", async () => {
    expect(host.conf.match(/-H 'Authorization: Bearer e2e-token-0123456789'/g)?.length).toBe(4);
    const stored = await psi(
      ["local", "store", "--podman-socket", host.sandbox.socketPath, "tok--A"],
      host.env,
      "tokened",
    );
    expect(stored.stderr).toBe("");
    expect(stored.code).toBe(0);
    expect((await host.sandbox.createWithSecret("tok--A")).toString()).toBe("tokened");
  });

  it("refuses the same lookup without the token", async () => {
    const id = (await mappingFiles(host.stateDir))[0]!;
    expect((await socketGet(host.socket, `/lookup/${id}`)).status).toBe(401);
    expect((await socketGet(host.socket, `/lookup/${id}`, token)).body).toBe("tokened");
    const unauthenticated = host.conf.replace(/ -H 'Authorization: Bearer [^']+'/g, "");
    expect((await driverCommand(unauthenticated, "lookup", id)).code).not.toBe(0);
  });
});
