// What an operator sees: log lines and the progress line on a real terminal (tmux renders
// the screen), and log lines under systemd (JOURNAL_STREAM) carrying syslog priorities.
import { execFileSync, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, fstatSync, openSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { initKeyfile } from "@psi/cache-keyfile";
import { type PodmanSandbox, podmanAvailable, podmanSandbox } from "@psi/testkit/podman";
import { requireTool, tempDir } from "@psi/testkit/tmp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const CLI = fileURLToPath(new URL("../dist/cli.js", import.meta.url));

let dir: { path: string; cleanup: () => Promise<void> };
let config: string;
beforeAll(async () => {
  dir = await tempDir("psi-cli-terminal-");
  config = join(dir.path, "config.yaml");
  // An unknown nested key is a warning (config.warning) on every command that loads it.
  await writeFile(
    config,
    `state_dir: ${join(dir.path, "state")}\nproviders: { local: {} }\ncache: { enabled: false, colour: blue }\nworkloads:\n  vault: { provider: local }\n`,
  );
});
afterAll(async () => {
  await dir?.cleanup();
});

/** Runs the built CLI with stderr going to a file, as systemd connects it to the journal. */
function runToFile(args: string[], env: (stderr: string) => Record<string, string>): string {
  const path = join(dir.path, `stderr-${Math.random().toString(36).slice(2)}`);
  const fd = openSync(path, "w");
  try {
    const stat = fstatSync(fd, { bigint: true });
    spawnSync(process.execPath, [CLI, ...args], {
      stdio: ["ignore", "ignore", fd],
      env: {
        PATH: process.env["PATH"] ?? "/usr/bin:/bin",
        HOME: dir.path,
        ...env(`${stat.dev}:${stat.ino}`),
      },
    });
  } finally {
    closeSync(fd);
  }
  return execFileSync("cat", [path], { encoding: "utf8" });
}

describe("under systemd (JOURNAL_STREAM)", () => {
  it("log lines start with their syslog priority, so journalctl -p warning finds them", () => {
    const journal = runToFile(["-c", config, "--log-level", "debug", "cache", "status"], (id) => ({
      JOURNAL_STREAM: id,
    }));
    const lines = journal.trim().split("\n");
    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines) expect(line).toMatch(/^<[3467]>\{/);
    expect(journal).toMatch(/^<4>\{.*"event":"config.warning"/m);
  });

  it("no prefix when JOURNAL_STREAM names another stream (a child of a service, redirected)", () => {
    const file = runToFile(["-c", config, "cache", "status"], () => ({ JOURNAL_STREAM: "1:2" }));
    expect(file).toMatch(/^\{.*"event":"config.warning"/m);
    expect(file).not.toMatch(/^</m);
    const plain = runToFile(["-c", config, "cache", "status"], () => ({}));
    expect(plain).toMatch(/^\{.*"event":"config.warning"/m);
  });
});

const skipTmux =
  requireTool(spawnSync("tmux", ["-V"]).status === 0, "tmux", "tmux") ||
  requireTool(podmanAvailable(), "podman", "podman");

describe.skipIf(skipTmux)("on a terminal", () => {
  let podman: PodmanSandbox;
  beforeAll(async () => {
    await mkdir(join(dir.path, "state"), { recursive: true });
    podman = await podmanSandbox(join(dir.path, "podman"), "");
    await podman.startService();
  }, 60_000);
  afterAll(async () => {
    await podman?.stop();
  });

  it("a log line during setup's progress gets a line of its own (tmux renders the screen)", async () => {
    const socket = join(dir.path, "tmux.sock");
    const script = join(dir.path, "run.sh");
    await writeFile(
      script,
      [
        `PATH=${JSON.stringify(process.env["PATH"] ?? "/usr/bin:/bin")}`,
        `HOME=${JSON.stringify(dir.path)}`,
        "export PATH HOME",
        `${JSON.stringify(process.execPath)} ${JSON.stringify(CLI)} -c ${JSON.stringify(config)} setup --podman-socket ${JSON.stringify(podman.socketPath)}`,
        `tmux -S ${JSON.stringify(socket)} wait-for -S psi-done`,
        "sleep 60",
        "",
      ].join("\n"),
    );
    const tmux = (...args: string[]) =>
      execFileSync("tmux", ["-S", socket, ...args], { encoding: "utf8" });
    tmux("new-session", "-d", "-x", "160", "-y", "40", "sh", script);
    try {
      tmux("wait-for", "psi-done");
      const screen = tmux("capture-pane", "-p");
      const log = screen.split("\n").find((line) => line.includes("INFO"));
      expect(log, screen).toBeDefined();
      // The log line starts with its time, not after the progress text it interrupted.
      expect(log).toMatch(/^\d\d:\d\d:\d\d\.\d{3} INFO /);
      expect(screen).not.toMatch(/workloads \d+\/\d+\d\d:/);
      expect(screen).toContain("setup done: 1 workload");
      expect(await readFile(script, "utf8")).toContain("setup");
    } finally {
      tmux("kill-server");
    }
  }, 60_000);
});

describe("output into a slow pipe", () => {
  it("a secret larger than the pipe's buffer reaches a reader that starts late, whole", async () => {
    // The bin exits as soon as the command is done (cli.ts): every byte must be out by then.
    const keyFile = join(dir.path, "big.keyfile");
    await initKeyfile({ path: keyFile });
    const bigConfig = join(dir.path, "big.yaml");
    await writeFile(
      bigConfig,
      `state_dir: ${join(dir.path, "big-state")}\nproviders: { local: {} }\ncache: { backend: keyfile, key_file: ${keyFile} }\n`,
    );
    const env = { PATH: process.env["PATH"] ?? "", HOME: dir.path };
    const value = randomBytes(600 * 1024);
    const sealed = spawnSync(
      process.execPath,
      [CLI, "-c", bigConfig, "local", "store", "--mapping-only", "big--A"],
      {
        input: value,
        env,
      },
    );
    expect(sealed.status).toBe(0);
    const id = "0123456789abcdef01234567b";
    const stored = spawnSync(process.execPath, [CLI, "-c", bigConfig, "secret", "store"], {
      input: sealed.stdout,
      env: { ...env, SECRET_ID: id },
    });
    expect(stored.status).toBe(0);
    const out = join(dir.path, "big.out");
    const run = spawnSync(
      "bash",
      [
        "-c",
        `"${process.execPath}" "${CLI}" -c "${bigConfig}" secret lookup | (sleep 0.5; cat > "${out}"); echo "exit=\${PIPESTATUS[0]}"`,
      ],
      { encoding: "utf8", env: { ...env, SECRET_ID: id } },
    );
    expect(run.stdout.trim()).toBe("exit=0");
    expect((await readFile(out)).equals(value)).toBe(true);
  });
});

describe("output into a pipe that closes early", () => {
  it("`psi --help | true` ends quietly with 0, no EPIPE stack trace", () => {
    // `true` exits before Node has started, so every write meets a pipe without readers.
    const run = spawnSync(
      "bash",
      ["-c", `"${process.execPath}" "${CLI}" --help | true; echo "exit=\${PIPESTATUS[0]}"`],
      { encoding: "utf8" },
    );
    expect(run.stdout.trim()).toBe("exit=0");
    expect(run.stderr).toBe("");
  });

  it("`psi --version | true` and `psi cache status | true` too (written on the descriptor)", () => {
    for (const args of ["--version", `-c ${config} cache status`]) {
      const run = spawnSync(
        "bash",
        ["-c", `"${process.execPath}" "${CLI}" ${args} | true; echo "exit=\${PIPESTATUS[0]}"`],
        { encoding: "utf8", env: { PATH: process.env["PATH"] ?? "", HOME: dir.path } },
      );
      // (this configuration's deliberate warning is the only thing on stderr)
      expect({ args, stdout: run.stdout.trim() }).toEqual({ args, stdout: "exit=0" });
      expect(run.stderr).not.toMatch(/EPIPE|^\s+at /m);
    }
  });
});
