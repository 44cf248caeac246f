import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { podmanAvailable } from "@psi/testkit/podman";
import { tempDir } from "@psi/testkit/tmp";
import { afterEach, beforeEach, describe, expect, it } from "vitest";

// `psi demo` end to end with the built CLI: no configuration, no external service.
const CLI = fileURLToPath(new URL("../dist/cli.js", import.meta.url));

let dir: { path: string; cleanup: () => Promise<void> };
let child: ChildProcess | undefined;

beforeEach(async () => {
  if (!existsSync(CLI)) {
    throw new Error(
      `${CLI} is missing: build the CLI first (pnpm exec turbo run build --filter=@psi/cli...)`,
    );
  }
  dir = await tempDir("psi-demo-test-");
});

afterEach(async () => {
  if (child && child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((resolve) => child!.once("exit", resolve));
    child.kill("SIGKILL");
    await exited;
  }
  child = undefined;
  await dir.cleanup();
});

/** `psi [...globals] demo ...args`, with `env` added to the demo's environment. */
function startDemo(
  args: string[],
  options: { globals?: string[]; env?: Record<string, string> } = {},
): {
  done: Promise<number>;
  stdout: () => string;
  stderr: () => string;
} {
  const env = {
    PATH: process.env["PATH"],
    HOME: join(dir.path, "home"),
    XDG_RUNTIME_DIR: dir.path,
    ...options.env,
  };
  const proc = spawn(process.execPath, [CLI, ...(options.globals ?? []), "demo", ...args], {
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  child = proc;
  let stdout = "";
  let stderr = "";
  proc.stdout.setEncoding("utf8").on("data", (chunk: string) => {
    stdout += chunk;
  });
  proc.stderr.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
  });
  const done = new Promise<number>((resolve) => proc.on("close", (code) => resolve(code ?? -1)));
  return { done, stdout: () => stdout, stderr: () => stderr };
}

function lookup(socketPath: string, id: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(
      { socketPath, path: `/lookup/${id}`, headers: { Host: "localhost" } },
      (res) => {
        let body = "";
        res.setEncoding("utf8").on("data", (chunk: string) => {
          body += chunk;
        });
        res.on("end", () => resolve(body));
      },
    );
    req.on("error", reject);
    req.end();
  });
}

function demoDir(stdout: string): string {
  const match = /everything lives in (\S+) and is removed on exit/.exec(stdout);
  if (!match) throw new Error(`no demo directory in the output:\n${stdout}`);
  return match[1]!;
}

describe("psi demo", () => {
  it("--once walks through a lookup on the socket (and through Podman), then cleans up", async () => {
    const demo = startDemo(["--once"]);
    const code = await demo.done;
    expect(demo.stderr()).not.toMatch(/"level":"(warn|error)"/);
    expect(code).toBe(0);
    const out = demo.stdout();
    const socket = join(dir.path, "psi", "psi-demo.sock");
    expect(out).toContain(`psi serve is listening on ${socket}`);
    expect(out).toContain(
      `$ curl -sf --unix-socket ${socket} http://localhost/lookup/demo--GREETING\n   hello from psi\n`,
    );
    if (podmanAvailable()) {
      expect(out).toContain(
        "Podman received for /run/secrets/db: correct-horse-battery-staple (28 bytes)",
      );
    }
    expect(out).toContain(`curl -s --unix-socket ${socket} http://localhost/healthz`);
    expect(existsSync(demoDir(out))).toBe(false);
    expect(existsSync(socket)).toBe(false);
  });

  it("keeps serving until Ctrl-C, then removes everything and exits 0", async () => {
    const socket = join(dir.path, "custom.sock");
    const demo = startDemo(["--socket", socket, "--no-podman"]);
    while (!demo.stdout().includes("Serving until Ctrl-C")) {
      if (child?.exitCode !== null) throw new Error(`demo exited early:\n${demo.stderr()}`);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    expect(demo.stdout()).not.toContain("Podman received");
    expect(await lookup(socket, "demo--API_KEY")).toBe("sk-demo-0123456789abcdef");
    child!.kill("SIGINT");
    expect(await demo.done).toBe(0);
    expect(existsSync(demoDir(demo.stdout()))).toBe(false);
    expect(existsSync(socket)).toBe(false);
  });

  it("refuses -c/--config: the demo always runs on its own configuration", async () => {
    // A configuration the demo must not load: it has no local provider, so serving it
    // would fail, and its state_dir must stay untouched.
    const named = join(dir.path, "named.yaml");
    const text = `state_dir: ${join(dir.path, "named-state")}\nproviders: {}\n`;
    writeFileSync(named, text);
    for (const globals of [["-c", named], [`--config=${named}`]]) {
      const demo = startDemo(["--once", "--no-podman"], { globals });
      expect(await demo.done).toBe(2);
      expect(demo.stderr()).toBe(
        "psi: psi demo runs on its own configuration in a temporary directory; drop -c/--config\n" +
          "(run with --help for usage)\n",
      );
      expect(demo.stdout()).toBe("");
    }
    expect(readFileSync(named, "utf8")).toBe(text);
    expect(existsSync(join(dir.path, "named-state"))).toBe(false);
  });

  it("ignores an ambient PSI_CONFIG and serves its own samples", async () => {
    const named = join(dir.path, "named.yaml");
    writeFileSync(named, `state_dir: ${join(dir.path, "named-state")}\nproviders: {}\n`);
    const demo = startDemo(["--once", "--no-podman"], { env: { PSI_CONFIG: named } });
    expect(await demo.done).toBe(0);
    const out = demo.stdout();
    expect(out).toContain("/lookup/demo--GREETING\n   hello from psi\n");
    expect(out).toMatch(/1\. Configuration \S+psi-demo-\S+\/config\.yaml: the local provider/);
    expect(existsSync(join(dir.path, "named-state"))).toBe(false);
  });

  it("refuses a socket another process is serving, and still cleans up", async () => {
    const socket = join(dir.path, "busy.sock");
    const first = startDemo(["--socket", socket, "--no-podman"]);
    const firstChild = child!;
    while (!first.stdout().includes("Serving until Ctrl-C")) {
      if (firstChild.exitCode !== null) throw new Error(`demo exited early:\n${first.stderr()}`);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    const second = startDemo(["--socket", socket, "--once", "--no-podman"]);
    expect(await second.done).toBe(1);
    expect(second.stderr()).toContain("another process is already serving");
    expect(existsSync(demoDir(second.stdout()))).toBe(false);
    expect(await lookup(socket, "demo--GREETING")).toBe("hello from psi");
    firstChild.kill("SIGINT");
    expect(await first.done).toBe(0);
  });
});
