// The shell examples of README.md and docs/**/*.md that are marked runnable are run here,
// so a renamed flag or command breaks this test instead of an operator's deployment.
//
// The marker: a fenced block whose info string is `sh runnable`:
//
//   ```sh runnable
//   psi cache status
//   ```
//
// Every runnable block of one file runs, in file order, in one `bash -euo pipefail` with
// the working directory at $HOME, so later blocks see what earlier ones did (a config
// written, `psi serve &` started). Each file gets a fresh sandbox host:
//
// - HOME and XDG_RUNTIME_DIR are temporary directories, and the examples run as a
//   rootless operator would (user scope): PSI_SCOPE=user and PSI_CONFIG=~/.config/psi/config.yaml,
//   because the tests themselves may run as root (whose defaults are /etc/psi, /run/psi).
//   The socket is then $XDG_RUNTIME_DIR/psi/psi.sock.
// - `psi` on PATH is the built CLI (apps/psi/dist/cli.js).
// - `podman` on PATH is the real Podman with isolated storage (@psi/testkit/podman); its
//   shell driver calls the sandbox's socket (the text `psi install --stdout` prints), and
//   its REST API listens on PSI_PODMAN_SOCKET for `psi setup` and `psi local store`.
// - A fake Infisical (the only fake: Infisical cannot run here) answers for every
//   `https://infisical.example.com` in the examples, which is rewritten to its URL. It
//   knows the universal-auth identity `client_id: psi-host` / `client_secret: EXAMPLE-client-secret`,
//   and project `4f1c5c1e-6d1a-4c2b-9a57-2b1f0e7c9d10` (environment prod) with
//   /web: DB_PASSWORD, API_KEY and /shared: SMTP_HOST.
// - No systemctl, systemd-creds or TPM: blocks that need them are not marked runnable.
//
// Processes an example leaves running (`psi serve &`) are stopped at the end: the bash
// runs in its own process group, which is signalled by its id.
import { spawn } from "node:child_process";
import { constants } from "node:fs";
import { access, chmod, mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { type FakeInfisical, startFakeInfisical } from "@psi/testkit/fake-infisical";
import { curlAvailable, podmanAvailable, podmanSandbox } from "@psi/testkit/podman";
import { requireTool, tempDir } from "@psi/testkit/tmp";
import { renderDriverConf } from "@psi/unitgen";
import { describe, expect, it } from "vitest";
import { CLI } from "./setup-host.js";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const MARKER = /^```sh runnable\s*$/;
const EXAMPLE_URL = "https://infisical.example.com";
export const EXAMPLE_PROJECT = "4f1c5c1e-6d1a-4c2b-9a57-2b1f0e7c9d10";

const skip =
  requireTool(podmanAvailable(), "podman", "podman") ||
  requireTool(curlAvailable(), "curl", "curl");

/** One runnable block: where it is and its text. */
export interface Example {
  file: string;
  line: number;
  code: string;
}

/** The runnable blocks of a Markdown text, in order. */
export function runnableBlocks(file: string, text: string): Example[] {
  const out: Example[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    if (!MARKER.test(lines[i] ?? "")) continue;
    const start = i + 1;
    let end = start;
    while (end < lines.length && !/^```\s*$/.test(lines[end] ?? "")) end++;
    if (end === lines.length) throw new Error(`${file}:${i + 1}: unterminated runnable block`);
    out.push({ file, line: i + 1, code: lines.slice(start, end).join("\n") });
    i = end;
  }
  return out;
}

async function markdownFiles(): Promise<string[]> {
  const docs = await readdir(join(ROOT, "docs"), { recursive: true });
  return [
    join(ROOT, "README.md"),
    ...docs
      .filter((name) => name.endsWith(".md"))
      .sort()
      .map((name) => join(ROOT, "docs", name)),
  ];
}

function seedInfisical(fake: FakeInfisical): void {
  fake.addUniversalAuth({
    clientId: "psi-host",
    clientSecret: "EXAMPLE-client-secret",
    identityId: "psi-host-identity",
  });
  const at = { projectId: EXAMPLE_PROJECT, environment: "prod" };
  fake.addFolder({ ...at, path: "/web" });
  fake.addFolder({ ...at, path: "/shared" });
  fake.setSecret({ ...at, path: "/web", key: "DB_PASSWORD", value: "example-db-password" });
  fake.setSecret({ ...at, path: "/web", key: "API_KEY", value: "example-api-key" });
  fake.setSecret({ ...at, path: "/shared", key: "SMTP_HOST", value: "smtp.example.com" });
}

/** Runs the examples of one file on a fresh sandbox host; resolves with the transcript. */
async function runExamples(examples: Example[]): Promise<{ code: number; output: string }> {
  const tmp = await tempDir("psi-docs-");
  const fake = await startFakeInfisical();
  const home = join(tmp.path, "home");
  const runtime = join(tmp.path, "run");
  const bin = join(tmp.path, "bin");
  await mkdir(home);
  await mkdir(runtime, { mode: 0o700 });
  await mkdir(bin);
  seedInfisical(fake);
  const socket = join(runtime, "psi", "psi.sock");
  const sandbox = await podmanSandbox(join(tmp.path, "podman"), renderDriverConf({ socket }));
  let group: number | undefined;
  try {
    await sandbox.startService();
    const podman = (await which("podman")) ?? "podman";
    await writeFile(
      join(bin, "psi"),
      `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(CLI)} "$@"\n`,
    );
    await writeFile(
      join(bin, "podman"),
      `#!/bin/sh\nexport CONTAINERS_CONF=${JSON.stringify(sandbox.env["CONTAINERS_CONF"])}\nexec ${JSON.stringify(podman)} ${sandbox.flags.map((f) => JSON.stringify(f)).join(" ")} "$@"\n`,
    );
    await chmod(join(bin, "psi"), 0o755);
    await chmod(join(bin, "podman"), 0o755);

    const script = examples
      .map(
        (e) =>
          `echo ${JSON.stringify(`### ${e.file}:${e.line}`)} >&2\n${e.code.replaceAll(EXAMPLE_URL, fake.url)}`,
      )
      .join("\n");
    const env: NodeJS.ProcessEnv = {
      PATH: `${bin}:${process.env["PATH"] ?? "/usr/bin:/bin"}`,
      HOME: home,
      XDG_RUNTIME_DIR: runtime,
      PSI_SCOPE: "user",
      PSI_CONFIG: join(home, ".config", "psi", "config.yaml"),
      PSI_PODMAN_SOCKET: sandbox.socketPath,
      LANG: "C.UTF-8",
    };
    return await new Promise((resolve, reject) => {
      const child = spawn("bash", ["-euo", "pipefail", "-c", script], {
        cwd: home,
        env,
        detached: true,
        stdio: ["ignore", "pipe", "pipe"],
      });
      group = child.pid;
      let output = "";
      child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
        output += chunk;
      });
      child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
        output += chunk;
      });
      child.on("error", reject);
      let status = -1;
      // A failed block leaves `psi serve &` holding the output pipes: stop the group when
      // bash exits, then resolve once the pipes close.
      child.on("exit", (code) => {
        status = code ?? -1;
        stopGroup(group);
      });
      child.on("close", () => resolve({ code: status, output }));
    });
  } finally {
    stopGroup(group);
    await sandbox.stop();
    await fake.stop();
    await tmp.cleanup();
  }
}

/** Signals the examples' process group (by its id) so nothing they started outlives the test. */
function stopGroup(group: number | undefined): void {
  if (group === undefined) return;
  try {
    process.kill(-group, "SIGTERM");
  } catch {
    // The group is gone: every example stopped what it started.
  }
}

async function which(command: string): Promise<string | undefined> {
  for (const dir of (process.env["PATH"] ?? "").split(":")) {
    const path = join(dir, command);
    try {
      await access(path, constants.X_OK);
      return path;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

const files = await markdownFiles();
const byFile = await Promise.all(
  files.map(async (path) =>
    runnableBlocks(relative(ROOT, path), await readFile(path, "utf8").catch(() => "")),
  ),
);

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N} _-]/gu, "")
    .replaceAll(" ", "-");
}

describe("links between the docs", () => {
  it("point at files that exist, and at headings that exist in them", async () => {
    const broken: string[] = [];
    for (const path of files) {
      const text = await readFile(path, "utf8").catch(() => "");
      const prose = text.replace(/```[\s\S]*?```/g, "");
      for (const match of prose.matchAll(/\]\(([^)\s]+)\)/g)) {
        const link = match[1] ?? "";
        if (/^[a-z]+:/.test(link)) continue;
        const [target = "", anchor] = link.split("#");
        const file = target === "" ? path : join(dirname(path), target);
        const name = relative(ROOT, file);
        const content = await readFile(file, "utf8").catch(() => undefined);
        if (content === undefined) {
          broken.push(`${relative(ROOT, path)}: ${link} (no such file)`);
          continue;
        }
        if (anchor === undefined || !name.endsWith(".md")) continue;
        const headings = [...content.matchAll(/^#{1,6} (.+)$/gm)].map((h) => slug(h[1] ?? ""));
        if (!headings.includes(anchor))
          broken.push(`${relative(ROOT, path)}: ${link} (no heading)`);
      }
    }
    expect(broken).toEqual([]);
  });
});

describe("runnable examples in the docs", () => {
  it("finds the marker in the README and the cache, provider and configuration docs", () => {
    const withExamples = byFile.filter((list) => list.length > 0).map((list) => list[0]?.file);
    expect(withExamples).toEqual(
      expect.arrayContaining([
        "README.md",
        "docs/secret-cache.md",
        "docs/providers/local.md",
        "docs/providers/infisical.md",
      ]),
    );
  });

  for (const examples of byFile) {
    if (examples.length === 0) continue;
    const file = examples[0]?.file ?? "";
    it.skipIf(skip)(`${file}: every runnable block succeeds`, { timeout: 180_000 }, async () => {
      const { code, output } = await runExamples(examples);
      const last = output.lastIndexOf("### ");
      const where = last >= 0 ? output.slice(last + 4).split("\n")[0] : file;
      expect(code, `the example at ${where} failed (exit ${code}):\n${output}`).toBe(0);
    });
  }
});
