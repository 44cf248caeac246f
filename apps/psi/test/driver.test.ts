import { mkdir, readFile, stat, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { saveCache } from "@psi/cache";
import { createKeyfileCacheBackend, initKeyfile } from "@psi/cache-keyfile";
import { parseMapping } from "@psi/core";
import { tempDir } from "@psi/testkit/tmp";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { runPsiBytes } from "./run-psi.js";

/** Runs the CLI in-process with its own streams, environment and uid. */
const psi = runPsiBytes;

let dir: { path: string; cleanup: () => Promise<void> };
let env: Record<string, string>;
let stateDir: string;
let keyFile: string;

async function writeConfig(extra = ""): Promise<void> {
  await writeFile(
    join(dir.path, "config.yaml"),
    `state_dir: ${stateDir}\nproviders:\n  local: {}\ncache:\n  backend: keyfile\n  key_file: ${keyFile}\n${extra}`,
  );
}

beforeEach(async () => {
  dir = await tempDir("psi-driver-");
  stateDir = join(dir.path, "state");
  keyFile = join(dir.path, "cache.keyfile");
  await mkdir(join(dir.path, "home"));
  env = {
    HOME: join(dir.path, "home"),
    XDG_RUNTIME_DIR: join(dir.path, "run"),
    PSI_CONFIG: join(dir.path, "config.yaml"),
    PATH: process.env["PATH"] ?? "/usr/bin:/bin",
  };
  await initKeyfile({ path: keyFile });
  await writeConfig();
});

afterEach(async () => {
  await dir.cleanup();
});

describe("psi install", () => {
  const expected = (sock: string, auth = "") =>
    "[secrets]\n" +
    'driver = "shell"\n' +
    "\n" +
    "[secrets.opts]\n" +
    `store = "curl -sf${auth} --unix-socket ${sock} -X POST -d @- http://localhost/store/$SECRET_ID"\n` +
    `lookup = "curl -sf${auth} --unix-socket ${sock} http://localhost/lookup/$SECRET_ID"\n` +
    `delete = "curl -sf${auth} --unix-socket ${sock} -X DELETE http://localhost/delete/$SECRET_ID"\n` +
    `list = "curl -sf${auth} --unix-socket ${sock} http://localhost/list"\n`;

  it("prints the driver conf for the scope's socket with --stdout", async () => {
    const run = await psi(["install", "--stdout"], { env });
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    expect(run.stdout.toString()).toBe(expected(join(dir.path, "run", "psi", "psi.sock")));
  });

  it("uses --socket, then PSI_SOCKET", async () => {
    const flag = await psi(["install", "--stdout", "--socket", "/tmp/x.sock"], {
      env: { ...env, PSI_SOCKET: "/e.sock" },
    });
    expect(flag.stdout.toString()).toBe(expected("/tmp/x.sock"));
    const fromEnv = await psi(["install", "--stdout"], { env: { ...env, PSI_SOCKET: "/e.sock" } });
    expect(fromEnv.stdout.toString()).toBe(expected("/e.sock"));
  });

  it("adds the bearer token right after -sf when one is configured", async () => {
    await writeConfig("socket_token: abcdefgh12345678\n");
    const run = await psi(["install", "--stdout", "--socket", "/s.sock"], { env });
    expect(run.stdout.toString()).toBe(
      expected("/s.sock", " -H 'Authorization: Bearer abcdefgh12345678'"),
    );
  });

  it("refuses a token that cannot go into a shell command line", async () => {
    const run = await psi(["install", "--stdout"], {
      env: { ...env, PSI_SOCKET_TOKEN: "has space'quote" },
    });
    expect(run.code).toBe(1);
    expect(run.stdout.length).toBe(0);
    expect(run.stderr).toMatch(/socket token from .* is not valid/);
  });

  it("writes containers.conf.d/psi.conf 0644, and 0600 once it holds a token", async () => {
    const path = join(dir.path, "home", ".config", "containers", "containers.conf.d", "psi.conf");
    const plain = await psi(["install"], { env });
    expect(plain.code).toBe(0);
    expect(plain.stdout.toString()).toContain(path);
    expect((await stat(path)).mode & 0o777).toBe(0o644);
    expect(await readFile(path, "utf8")).toBe(expected(join(dir.path, "run", "psi", "psi.sock")));

    const withToken = await psi(["install"], {
      env: { ...env, PSI_SOCKET_TOKEN: "tok-tok-tok-tok" },
    });
    expect(withToken.code).toBe(0);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect(await readFile(path, "utf8")).toContain("Bearer tok-tok-tok-tok");
  });

  it("works before any configuration exists (scope defaults)", async () => {
    const run = await psi(["install", "--stdout"], {
      env: { ...env, PSI_CONFIG: join(dir.path, "absent.yaml") },
    });
    expect(run.code).toBe(0);
    expect(run.stdout.toString()).toBe(expected(join(dir.path, "run", "psi", "psi.sock")));
  });
});

describe("psi secret (one-shot shell driver)", () => {
  const value = "sëcret value\nwith newline";

  async function sealed(): Promise<Buffer> {
    const run = await psi(["local", "store", "--mapping-only", "demo--A"], { env, stdin: value });
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    return run.stdout;
  }

  it("stores a mapping, looks it up, lists it and deletes it", async () => {
    const mapping = await sealed();
    const id = "0123456789abcdef01234567a";
    const store = await psi(["secret", "store"], {
      env: { ...env, SECRET_ID: id },
      stdin: mapping,
    });
    expect(store).toMatchObject({ code: 0, stderr: "" });
    expect(store.stdout.length).toBe(0);
    expect(await readFile(join(stateDir, id))).toEqual(mapping);
    expect((await stat(join(stateDir, id))).mode & 0o777).toBe(0o600);

    const lookup = await psi(["secret", "lookup"], { env: { ...env, SECRET_ID: id } });
    expect(lookup.stderr).toBe("");
    expect(lookup.code).toBe(0);
    expect(lookup.stdout.toString("utf8")).toBe(value);

    await psi(["secret", "store"], { env: { ...env, SECRET_ID: "bbb" }, stdin: mapping });
    const list = await psi(["secret", "list"], { env });
    expect(list.stdout.toString()).toBe(`${id}\nbbb\n`);

    const del = await psi(["secret", "delete"], { env: { ...env, SECRET_ID: id } });
    expect(del).toMatchObject({ code: 0, stderr: "" });
    expect(del.stdout.length).toBe(0);
    expect((await psi(["secret", "list"], { env })).stdout.toString()).toBe("bbb\n");
    expect((await psi(["secret", "delete"], { env: { ...env, SECRET_ID: id } })).code).toBe(0);
  });

  it("lists nothing (and succeeds) before state_dir exists", async () => {
    const list = await psi(["secret", "list"], { env });
    expect(list).toMatchObject({ code: 0, stderr: "" });
    expect(list.stdout.length).toBe(0);
  });

  it("answers from the cache without opening the provider", async () => {
    // An Infisical nobody can reach: a value can only come from cache.enc.
    await writeFile(
      join(dir.path, "config.yaml"),
      `state_dir: ${stateDir}\n` +
        "providers:\n  local: {}\n  infisical:\n    api_url: http://127.0.0.1:9\n" +
        "    auth: { method: universal-auth, client_id: a, client_secret: b }\n" +
        "    projects:\n      p: { id: pid }\n" +
        `cache:\n  backend: keyfile\n  key_file: ${keyFile}\n`,
    );
    const mapping = { provider: "infisical", project: "p", path: "/app", key: "DB" };
    await mkdir(stateDir, { recursive: true });
    await writeFile(join(stateDir, "cafe01"), JSON.stringify(mapping));
    const backend = createKeyfileCacheBackend({ path: keyFile });
    await backend.open();
    await saveCache({
      path: join(stateDir, "cache.enc"),
      backend,
      fetched: [{ mapping, value: Buffer.from("from-the-cache") }],
      prune: true,
    });
    const lookup = await psi(["secret", "lookup"], { env: { ...env, SECRET_ID: "cafe01" } });
    expect(lookup.stderr).toBe("");
    expect(lookup.stdout.toString()).toBe("from-the-cache");
  });

  it("fails with exit 1, a message on stderr and nothing on stdout", async () => {
    await mkdir(stateDir, { recursive: true });
    await writeFile(join(stateDir, "corrupt"), "{not json");
    await writeFile(join(stateDir, "other"), '{"provider": "nope"}');
    const cases: [Record<string, string>, RegExp][] = [
      [{ SECRET_ID: "missing" }, /no mapping for secret missing/],
      [{ SECRET_ID: "../etc" }, /invalid secret ID/],
      [{ SECRET_ID: "cache.enc" }, /reserved/],
      [{ SECRET_ID: "corrupt" }, /not valid JSON/],
      [{ SECRET_ID: "other" }, /provider "nope" is not configured/],
      [{}, /SECRET_ID is not set/],
    ];
    for (const [extra, message] of cases) {
      const run = await psi(["secret", "lookup"], { env: { ...env, ...extra } });
      expect(run.code).toBe(1);
      expect(run.stdout.length).toBe(0);
      expect(run.stderr).toMatch(message);
    }
    const store = await psi(["secret", "store"], {
      env: { ...env, SECRET_ID: "a/b" },
      stdin: "{}",
    });
    expect(store.code).toBe(1);
    expect(store.stderr).toMatch(/invalid secret ID/);
  });

  it("refuses a symlink or a directory as a mapping, with what is there and the fix", async () => {
    const mapping = await sealed();
    await psi(["secret", "store"], { env: { ...env, SECRET_ID: "abc" }, stdin: mapping });
    expect((await psi(["secret", "lookup"], { env: { ...env, SECRET_ID: "abc" } })).code).toBe(0);
    // a link to a good mapping is still refused: PSI never follows one in state_dir
    await symlink(join(stateDir, "abc"), join(stateDir, "linked"));
    await mkdir(join(stateDir, "adir"));
    for (const [id, what] of [
      ["linked", "is a symbolic link"],
      ["adir", "is a directory"],
    ] as const) {
      const run = await psi(["secret", "lookup"], { env: { ...env, SECRET_ID: id } });
      expect(run.code).toBe(1);
      expect(run.stdout.length).toBe(0);
      expect(run.stderr).toContain(what);
    }
  });

  it("reports a local secret sealed under another key", async () => {
    const mapping = await sealed();
    await psi(["secret", "store"], { env: { ...env, SECRET_ID: "abc" }, stdin: mapping });
    await initKeyfile({ path: keyFile, force: true });
    const run = await psi(["secret", "lookup"], { env: { ...env, SECRET_ID: "abc" } });
    expect(run.code).toBe(1);
    expect(run.stdout.length).toBe(0);
    expect(run.stderr).toContain("cannot decrypt");
    expect(run.stderr).not.toContain("sëcret");
  });
});

describe("psi local store", () => {
  it("prints a local mapping with --mapping-only, never the value", async () => {
    const run = await psi(["local", "store", "--mapping-only", "x"], {
      env,
      stdin: "hunter2-hunter2",
    });
    expect(run.code).toBe(0);
    const mapping = parseMapping(run.stdout);
    expect(mapping.provider).toBe("local");
    expect(run.stdout.toString()).toMatch(/^\{"provider": "local", "blob": "[A-Za-z0-9+/=]+"\}$/);
    expect(run.stdout.toString()).not.toContain("hunter2");
  });

  it("refuses an empty stdin", async () => {
    const run = await psi(["local", "store", "--mapping-only", "x"], { env, stdin: "" });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain("stdin is empty");
    expect(run.stdout.length).toBe(0);
  });

  it("says what to configure without the local provider or a cache backend", async () => {
    await writeFile(
      join(dir.path, "config.yaml"),
      `state_dir: ${stateDir}\ncache:\n  backend: keyfile\n  key_file: ${keyFile}\n`,
    );
    const noProvider = await psi(["local", "store", "--mapping-only", "x"], { env, stdin: "v" });
    expect(noProvider.code).toBe(1);
    expect(noProvider.stderr).toContain("providers: { local: {} }");
    await writeFile(
      join(dir.path, "config.yaml"),
      `state_dir: ${stateDir}\nproviders:\n  local: {}\n`,
    );
    const noBackend = await psi(["local", "store", "--mapping-only", "x"], { env, stdin: "v" });
    expect(noBackend.code).toBe(1);
    expect(noBackend.stderr).toContain("cache.backend");
  });

  it("says how to start Podman when its API socket is missing", async () => {
    const run = await psi(["local", "store", "--podman-socket", join(dir.path, "none.sock"), "x"], {
      env,
      stdin: "v",
    });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain("podman.socket");
  });
});
