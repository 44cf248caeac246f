import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { Agent } from "node:http";
import { connect } from "node:net";
import { join } from "node:path";
import { createCacheStore, saveCache } from "@psi/cache";
import { createKeyfileCacheBackend, initKeyfile } from "@psi/cache-keyfile";
import { PsiError } from "@psi/core";
import { tempDir } from "@psi/testkit/tmp";
import { captureLogger, unixRequest } from "@psi/testkit/unix-http";
import { afterEach, describe, expect, it } from "vitest";
import type { LookupBackends } from "../src/index.js";
import { type Harness, mappingFor, startServer, tableProvider } from "./helpers.js";

const ID = "a1b2c3d4e5f60718293a4b5c6";
const TOKEN = "s3cret-T0ken.value";
const SECRET_VALUES = ["db.internal", "hunter2", "from-file-\u0000\u00ff", "live-value", "two"];

let harness: Harness | undefined;
let scratch: { path: string; cleanup: () => Promise<void> } | undefined;
afterEach(async () => {
  await harness?.stop();
  harness = undefined;
  await scratch?.cleanup();
  scratch = undefined;
});

/** A directory for the cache key and file, outside the server's. */
async function cacheDir(): Promise<string> {
  scratch = await tempDir("psi-cache-");
  return scratch.path;
}

const silent = captureLogger("warn").logger;

async function keyfileCache(dir: string, fetched: Array<{ key: string; value: string | Buffer }>) {
  const keyPath = join(dir, "cache.keyfile");
  await initKeyfile({ path: keyPath, force: true });
  const backend = createKeyfileCacheBackend({ path: keyPath });
  await backend.open();
  const path = join(dir, "cache.enc");
  const save = (items: Array<{ key: string; value: string | Buffer }>) =>
    saveCache({
      path,
      backend,
      fetched: items.map(({ key, value }) => ({
        mapping: mappingFor(key),
        value: Buffer.from(value),
      })),
      prune: true,
    });
  await save(fetched);
  return { path, backend, save };
}

function json(text: string): { error: string; detail: string } {
  return JSON.parse(text) as { error: string; detail: string };
}

function noValuesIn(text: string): void {
  for (const value of SECRET_VALUES)
    expect(text.includes(value), `log leaks ${JSON.stringify(value)}`).toBe(false);
}

describe("GET /healthz", () => {
  it("answers ok without auth, with or without a trailing slash", async () => {
    harness = await startServer({ token: TOKEN });
    for (const path of ["/healthz", "/healthz/"]) {
      const res = await harness.request({ path });
      expect(res.status).toBe(200);
      expect(res.text).toBe("ok");
    }
    expect((await harness.request({ method: "POST", path: "/healthz" })).status).toBe(404);
  });
});

describe("GET /lookup/<id>", () => {
  it("answers a cache hit from a real keyfile cache, byte for byte, without the provider", async () => {
    const provider = tableProvider("infisical");
    const cacheFile = await keyfileCache(await cacheDir(), [
      { key: "DB", value: Buffer.from("from-file-\u0000\u00ff", "latin1") },
    ]);
    const store = createCacheStore({
      path: cacheFile.path,
      backend: cacheFile.backend,
      logger: silent,
    });
    await store.load();
    harness = await startServer({ providers: new Map([["infisical", provider]]), cache: store });
    await harness.writeMapping(ID, mappingFor("DB"));
    const res = await harness.request({ path: `/lookup/${ID}` });
    expect(res.status).toBe(200);
    expect(res.body.equals(Buffer.from("from-file-\u0000\u00ff", "latin1"))).toBe(true);
    expect(res.headers["content-type"]).toBe("application/octet-stream");
    expect(provider.calls).toBe(0);
    const hit = harness.log.records().find((r) => r.event === "lookup");
    expect(hit).toMatchObject({ level: "debug", source: "file", outcome: "ok", secret_id: ID });
    noValuesIn(harness.log.text());
  });

  it("while the cache is still opening, answers /healthz and holds lookups until it is loaded", async () => {
    const provider = tableProvider("infisical", { DB: "live-value" });
    const cacheFile = await keyfileCache(await cacheDir(), [{ key: "DB", value: "hunter2" }]);
    const store = createCacheStore({
      path: cacheFile.path,
      backend: cacheFile.backend,
      logger: silent,
    });
    let open: (backends: LookupBackends) => void = () => {};
    const opening = new Promise<LookupBackends>((resolve) => {
      open = resolve;
    });
    harness = await startServer({ opening });
    await harness.writeMapping(ID, mappingFor("DB"));
    expect((await harness.request({ path: "/healthz" })).status).toBe(200);
    let answered = false;
    const pending = harness.request({ path: `/lookup/${ID}` }).then((res) => {
      answered = true;
      return res;
    });
    const server = harness.server;
    await expect.poll(() => server.inFlight()).toBe(1);
    expect((await harness.request({ path: "/healthz" })).status).toBe(200);
    expect(answered).toBe(false);
    await store.load();
    open({ providers: new Map([["infisical", provider]]), cache: store });
    const res = await pending;
    expect(res.status).toBe(200);
    expect(res.text).toBe("hunter2");
    expect(provider.calls).toBe(0);
  });

  it("asks the provider on a miss, keeps the value in memory, logs at info", async () => {
    const provider = tableProvider("infisical", { DB: "db.internal" });
    const store = createCacheStore({ path: join(await cacheDir(), "cache.enc"), logger: silent });
    harness = await startServer({ providers: new Map([["infisical", provider]]), cache: store });
    await harness.writeMapping(ID, mappingFor("DB"));
    const first = await harness.request({ path: `/lookup/${ID}` });
    expect(first.status).toBe(200);
    expect(first.text).toBe("db.internal");
    const second = await harness.request({ path: `/lookup/${ID}/` });
    expect(second.text).toBe("db.internal");
    expect(provider.calls).toBe(1);
    const lines = harness.log.records().filter((r) => r.event === "lookup");
    expect(lines[0]).toMatchObject({ level: "info", source: "provider", provider: "infisical" });
    expect(lines[1]).toMatchObject({ level: "debug", source: "memory" });
    noValuesIn(harness.log.text());
  });

  it("without a cache every lookup goes to the provider", async () => {
    const provider = tableProvider("infisical", { DB: "db.internal" });
    harness = await startServer({ providers: new Map([["infisical", provider]]) });
    await harness.writeMapping(ID, mappingFor("DB"));
    await harness.request({ path: `/lookup/${ID}` });
    await harness.request({ path: `/lookup/${ID}?ignored=1` });
    expect(provider.calls).toBe(2);
  });

  it("rejects malformed and traversing IDs with 400 before touching the disk", async () => {
    harness = await startServer();
    await writeFile(join(harness.dir, "outside"), JSON.stringify(mappingFor("X")));
    const bad = [
      "/lookup/",
      "/lookup",
      "/lookup/..",
      "/lookup/.",
      "/lookup/../outside",
      "/lookup/..%2Foutside",
      "/lookup/a%2Fb",
      "/lookup/a%5Cb",
      "/lookup/a%00b",
      "/lookup/%zz",
      `/lookup/${"a".repeat(256)}`,
      `/lookup/${encodeURIComponent("é".repeat(128))}`,
      "/lookup/cache.enc",
      "/lookup/.token.abc.json",
      "/lookup/hsm.pin",
    ];
    for (const path of bad) {
      const res = await harness.request({ path });
      expect(res.status, path).toBe(400);
      expect(res.headers["content-type"], path).toBe("application/json");
      expect(json(res.text).error, path).toBe("invalid_secret_id");
    }
    expect((await harness.request({ path: `/lookup/${"a".repeat(255)}` })).status).toBe(404);
  });

  it("answers 404 not_found without a mapping", async () => {
    harness = await startServer();
    const res = await harness.request({ path: `/lookup/${ID}` });
    expect(res.status).toBe(404);
    expect(json(res.text)).toMatchObject({ error: "not_found" });
  });

  it("answers 500 corrupt_mapping for mappings that are not a JSON object with a provider", async () => {
    harness = await startServer({
      providers: new Map([["infisical", tableProvider("infisical")]]),
    });
    for (const content of ["not json", "[]", '{"provider": 5}', '{"key": "x"}', "", "null"]) {
      await harness.writeMapping(ID, content);
      const res = await harness.request({ path: `/lookup/${ID}` });
      expect(res.status, content).toBe(500);
      expect(json(res.text).error, content).toBe("corrupt_mapping");
    }
  });

  it("answers 500 unknown_provider for a provider that is not open, unless the value is cached", async () => {
    const cacheFile = await keyfileCache(await cacheDir(), [{ key: "CACHED", value: "hunter2" }]);
    const store = createCacheStore({
      path: cacheFile.path,
      backend: cacheFile.backend,
      logger: silent,
    });
    await store.load();
    harness = await startServer({ providers: new Map(), cache: store });
    await harness.writeMapping(ID, mappingFor("OTHER"));
    await harness.writeMapping("cached1", mappingFor("CACHED"));
    await harness.writeMapping("vault1", { provider: "vault", key: "x" });
    const unknown = await harness.request({ path: `/lookup/${ID}` });
    expect(unknown.status).toBe(500);
    expect(json(unknown.text).error).toBe("unknown_provider");
    expect((await harness.request({ path: "/lookup/vault1" })).status).toBe(500);
    const cached = await harness.request({ path: "/lookup/cached1" });
    expect(cached.status).toBe(200);
    expect(cached.text).toBe("hunter2");
  });

  it("answers 502 provider_error with the provider's message, never a value", async () => {
    const provider = tableProvider("infisical", {
      DOWN: new PsiError("provider.unreachable", "cannot reach Infisical at http://127.0.0.1:9"),
      BUG: new TypeError("x is not a function"),
    });
    harness = await startServer({ providers: new Map([["infisical", provider]]) });
    await harness.writeMapping("down", mappingFor("DOWN"));
    await harness.writeMapping("bug", mappingFor("BUG"));
    await harness.writeMapping("gone", mappingFor("GONE"));
    const down = await harness.request({ path: "/lookup/down" });
    expect(down.status).toBe(502);
    expect(json(down.text)).toEqual({
      error: "provider_error",
      detail: "cannot reach Infisical at http://127.0.0.1:9",
    });
    const bug = await harness.request({ path: "/lookup/bug" });
    expect(bug.status).toBe(502);
    expect(json(bug.text).error).toBe("provider_error");
    expect((await harness.request({ path: "/lookup/gone" })).status).toBe(502);
    const warnings = harness.log.records().filter((r) => r.outcome === "provider_error");
    expect(warnings).toHaveLength(3);
    expect(warnings.every((r) => r.level === "warn")).toBe(true);
  });

  it("answers 500 corrupt_mapping, naming what is there, when the mapping is a directory", async () => {
    harness = await startServer();
    await mkdir(join(harness.stateDir, "adir"));
    const res = await harness.request({ path: "/lookup/adir" });
    expect(res.status).toBe(500);
    expect(json(res.text)).toMatchObject({
      error: "corrupt_mapping",
      detail: expect.stringContaining("is a directory"),
    });
  });

  it("remembers mappings but follows changes on disk (inotify) and through the socket", async () => {
    const provider = tableProvider("infisical", { A: "value-a", B: "value-b", C: "value-c" });
    harness = await startServer({ providers: new Map([["infisical", provider]]) });
    await harness.writeMapping(ID, mappingFor("A"));
    expect((await harness.request({ path: `/lookup/${ID}` })).text).toBe("value-a");
    // rewritten by another process (psi secret store, psi local store): atomically, as they do
    const temp = join(harness.stateDir, ".tmp-mapping");
    await writeFile(temp, JSON.stringify(mappingFor("B")));
    await rename(temp, join(harness.stateDir, ID));
    const deadline = Date.now() + 5000;
    let text = "";
    while (Date.now() < deadline) {
      text = (await harness.request({ path: `/lookup/${ID}` })).text;
      if (text === "value-b") break;
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(text).toBe("value-b");
    // through the socket: at once
    await harness.request({
      method: "POST",
      path: `/store/${ID}`,
      body: JSON.stringify(mappingFor("C")),
    });
    expect((await harness.request({ path: `/lookup/${ID}` })).text).toBe("value-c");
    await harness.request({ method: "DELETE", path: `/delete/${ID}` });
    expect((await harness.request({ path: `/lookup/${ID}` })).status).toBe(404);
  });

  it("shares one provider call between concurrent misses of the same mapping", async () => {
    const provider = tableProvider("infisical", { DB: "db.internal", OTHER: "hunter2" });
    harness = await startServer({ providers: new Map([["infisical", provider]]) });
    // Podman's delete-and-create churn: several IDs, one mapping
    await harness.writeMapping("id1", mappingFor("DB"));
    await harness.writeMapping(
      "id2",
      JSON.parse(
        JSON.stringify({ key: "DB", path: "/app", project: "proj", provider: "infisical" }),
      ),
    );
    await harness.writeMapping("id3", mappingFor("OTHER"));
    provider.hold();
    const requests = [
      ...Array.from({ length: 16 }, (_, i) =>
        harness!.request({ path: `/lookup/id${(i % 2) + 1}` }),
      ),
      harness.request({ path: "/lookup/id3" }),
    ];
    // Release only once all 17 requests are inside the server (no fixed sleep: wait for it).
    while (provider.calls < 2 || harness.server.inFlight() < 17)
      await new Promise((r) => setTimeout(r, 5));
    provider.release();
    const answers = await Promise.all(requests);
    expect(answers.slice(0, 16).every((r) => r.status === 200 && r.text === "db.internal")).toBe(
      true,
    );
    expect(answers[16]!.text).toBe("hunter2");
    expect(provider.calls).toBe(2);
  });

  it("serves a refresh written by setup without a restart", async () => {
    const provider = tableProvider("infisical");
    const cacheFile = await keyfileCache(await cacheDir(), [{ key: "DB", value: "one" }]);
    const store = createCacheStore({
      path: cacheFile.path,
      backend: cacheFile.backend,
      logger: silent,
    });
    await store.load();
    harness = await startServer({ providers: new Map([["infisical", provider]]), cache: store });
    await harness.writeMapping(ID, mappingFor("DB"));
    expect((await harness.request({ path: `/lookup/${ID}` })).text).toBe("one");
    await cacheFile.save([{ key: "DB", value: "two" }]);
    // The lookup that notices the change starts the reload and answers at once from
    // memory; the reload's end is the event to wait for.
    expect((await harness.request({ path: `/lookup/${ID}` })).text).toBe("one");
    await store.reloadIfChanged();
    expect((await harness.request({ path: `/lookup/${ID}` })).text).toBe("two");
    expect(provider.calls).toBe(0);
  });

  it("goes live when the cache file is corrupt", async () => {
    const provider = tableProvider("infisical", { DB: "live-value" });
    const cacheFile = await keyfileCache(await cacheDir(), [{ key: "DB", value: "one" }]);
    await writeFile(cacheFile.path, "PSIC\u0001\u0003garbage");
    const store = createCacheStore({
      path: cacheFile.path,
      backend: cacheFile.backend,
      logger: silent,
    });
    await expect(store.load()).rejects.toMatchObject({ code: "cache.truncated" });
    harness = await startServer({ providers: new Map([["infisical", provider]]), cache: store });
    await harness.writeMapping(ID, mappingFor("DB"));
    const res = await harness.request({ path: `/lookup/${ID}` });
    expect(res.text).toBe("live-value");
  });
});

describe("authentication", () => {
  it("requires the bearer token on every endpoint but /healthz", async () => {
    harness = await startServer({
      token: TOKEN,
      providers: new Map([["infisical", tableProvider("infisical", { DB: "db.internal" })]]),
    });
    await harness.writeMapping(ID, mappingFor("DB"));
    const endpoints = [
      { path: `/lookup/${ID}` },
      { method: "POST", path: `/store/${ID}`, body: "{}" },
      { method: "DELETE", path: `/delete/${ID}` },
      { path: "/list" },
      { path: "/metrics" },
    ];
    const wrong: Array<Record<string, string>> = [
      {},
      { authorization: "Bearer wrong-token-1" },
      { authorization: `Bearer ${TOKEN}x` },
      { authorization: "Bearer x" },
      { authorization: TOKEN },
      { authorization: `Basic ${TOKEN}` },
    ];
    for (const endpoint of endpoints) {
      for (const headers of wrong) {
        const res = await harness.request({ ...endpoint, headers });
        expect(res.status, `${endpoint.path} ${JSON.stringify(headers)}`).toBe(401);
        expect(res.text).toBe('{"error":"unauthorized","detail":"invalid or missing token"}');
      }
    }
    expect(await readFile(join(harness.stateDir, ID), "utf8")).toContain("DB");
    const ok = await harness.request({
      path: `/lookup/${ID}`,
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(ok.status).toBe(200);
    const lower = await harness.request({
      path: "/list",
      headers: { authorization: `bearer ${TOKEN}` },
    });
    expect(lower.status).toBe(200);
    // unknown routes are 404 without auth
    expect((await harness.request({ path: "/nope" })).status).toBe(404);
  });
});

describe("POST /store/<id>", () => {
  it("writes the mapping bytes atomically with mode 0600", async () => {
    harness = await startServer();
    const body = '{"provider": "infisical", "project": "proj", "path": "/app", "key": "DB"}';
    const res = await harness.request({ method: "POST", path: `/store/${ID}`, body });
    expect(res.status).toBe(200);
    expect(res.text).toBe("ok");
    expect(await readFile(join(harness.stateDir, ID), "utf8")).toBe(body);
    expect((await stat(join(harness.stateDir, ID))).mode & 0o777).toBe(0o600);
    const local = '{"provider":"local","blob":"x"}';
    const again = await harness.request({ method: "POST", path: `/store/${ID}/`, body: local });
    expect(again.status).toBe(200);
    expect(await readFile(join(harness.stateDir, ID), "utf8")).toBe(local);
    expect(await readdir(harness.stateDir)).toEqual([ID]);
  });

  it("requires a JSON object with a string provider (400, nothing written)", async () => {
    harness = await startServer();
    const bodies = [
      "",
      "not json",
      "[]",
      '"infisical"',
      "null",
      "{}",
      '{"provider": 7}',
      '{"provider": ""}',
      JSON.stringify({ provider: "p".repeat(500_000) }),
    ];
    for (const body of bodies) {
      const res = await harness.request({ method: "POST", path: `/store/${ID}`, body });
      expect(res.status, body.slice(0, 20)).toBe(400);
      expect(JSON.parse(res.text).error).toBe("corrupt_mapping");
      expect(res.text.length).toBeLessThan(700);
    }
    expect(await readdir(harness.stateDir)).toEqual([]);
  });

  it("bounds what an error echoes of a hostile mapping (a 500 KB provider field)", async () => {
    harness = await startServer();
    await writeFile(
      join(harness.stateDir, ID),
      JSON.stringify({ provider: "x".repeat(500_000), key: "K" }),
    );
    const res = await harness.request({ path: `/lookup/${ID}` });
    expect(res.status).toBe(500);
    expect(JSON.parse(res.text).error).toBe("corrupt_mapping");
    expect(res.text.length).toBeLessThan(700);
    await writeFile(join(harness.stateDir, ID), JSON.stringify({ provider: "y".repeat(64) }));
    const unknown = await harness.request({ path: `/lookup/${ID}` });
    expect(JSON.parse(unknown.text).error).toBe("unknown_provider");
    expect(unknown.text.length).toBeLessThan(700);
  });

  it("creates a missing state_dir 0700", async () => {
    harness = await startServer();
    await rm(harness.stateDir, { recursive: true });
    expect(
      (
        await harness.request({
          method: "POST",
          path: `/store/${ID}`,
          body: '{"provider":"local"}',
        })
      ).status,
    ).toBe(200);
    expect((await stat(harness.stateDir)).mode & 0o777).toBe(0o700);
  });

  it("accepts exactly 1 MiB and answers 413 above, declared or chunked", async () => {
    harness = await startServer();
    const mib = 1024 * 1024;
    // a mapping padded with JSON whitespace to exactly 1 MiB
    const exact = Buffer.alloc(mib, 0x20);
    exact.write('{"provider":"local"}');
    expect(
      (await harness.request({ method: "POST", path: "/store/big", body: exact })).status,
    ).toBe(200);
    const declared = await harness
      .request({ method: "POST", path: "/store/big2", body: Buffer.alloc(mib + 1, 0x20) })
      .catch((error: NodeJS.ErrnoException) => ({ status: error.code ?? "error", text: "" }));
    expect([413, "ECONNRESET", "EPIPE"]).toContain(declared.status);
    // chunked: no Content-Length, the limit is counted while reading
    const chunked = await new Promise<number>((resolve) => {
      const socket = connect(harness!.socket);
      let answer = "";
      socket.on("data", (d) => {
        answer += d.toString();
      });
      socket.on("error", () => resolve(Number(answer.slice(9, 12)) || -1));
      socket.on("close", () => resolve(Number(answer.slice(9, 12)) || -1));
      socket.write("POST /store/big3 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
      const chunk = Buffer.alloc(256 * 1024, 0x20);
      for (let i = 0; i < 5; i++)
        socket.write(`${chunk.length.toString(16)}\r\n${chunk.toString()}\r\n`);
      socket.write("0\r\n\r\n");
    });
    expect(chunked).toBe(413);
    const names = await readdir(harness.stateDir);
    expect(names.sort()).toEqual(["big"]);
    expect((await harness.request({ path: "/healthz" })).status).toBe(200);
  });

  it("rejects invalid and reserved IDs with 400", async () => {
    harness = await startServer();
    for (const path of [
      "/store/",
      "/store/..",
      "/store/cache.enc",
      "/store/a%2Fb",
      "/store/x.pin",
    ]) {
      const res = await harness.request({ method: "POST", path, body: "{}" });
      expect(res.status, path).toBe(400);
      expect(json(res.text).error).toBe("invalid_secret_id");
    }
    expect(await readdir(harness.stateDir)).toEqual([]);
  });
});

describe("DELETE /delete/<id>", () => {
  it("removes the mapping and answers 200 also when it is absent", async () => {
    harness = await startServer();
    await harness.writeMapping(ID, mappingFor("DB"));
    expect((await harness.request({ method: "DELETE", path: `/delete/${ID}` })).text).toBe("ok");
    expect(await readdir(harness.stateDir)).toEqual([]);
    const again = await harness.request({ method: "DELETE", path: `/delete/${ID}/` });
    expect(again.status).toBe(200);
    expect(again.text).toBe("ok");
  });

  it("never deletes PSI's own files", async () => {
    harness = await startServer();
    await writeFile(join(harness.stateDir, "cache.enc"), "x");
    for (const path of ["/delete/cache.enc", "/delete/..", "/delete/", "/delete/a%2Fb"]) {
      expect((await harness.request({ method: "DELETE", path })).status, path).toBe(400);
    }
    expect(await readdir(harness.stateDir)).toEqual(["cache.enc"]);
  });
});

describe("GET /list", () => {
  it("lists secret IDs sorted, one per line, without PSI's own files", async () => {
    harness = await startServer();
    for (const name of [
      "ccc",
      "aaa",
      "bbb",
      "cache.enc",
      ".token.abc.json",
      "nitrokeyhsm-pubkey.der",
      "hsm.pin",
      ".psi-x.tmp",
    ]) {
      await writeFile(join(harness.stateDir, name), "{}");
    }
    await mkdir(join(harness.stateDir, "subdir"));
    const res = await harness.request({ path: "/list" });
    expect(res.status).toBe(200);
    expect(res.text).toBe("aaa\nbbb\nccc\n");
    expect((await harness.request({ path: "/list/" })).text).toBe("aaa\nbbb\nccc\n");
  });

  it("is empty for an empty or missing state_dir", async () => {
    harness = await startServer();
    expect((await harness.request({ path: "/list" })).text).toBe("");
    await rm(harness.stateDir, { recursive: true });
    const res = await harness.request({ path: "/list" });
    expect(res.status).toBe(200);
    expect(res.text).toBe("");
  });
});

describe("anything else", () => {
  it("answers 404 with the JSON error body", async () => {
    harness = await startServer();
    for (const [method, path] of [
      ["GET", "/"],
      ["GET", "/lookupx/a"],
      ["PUT", "/store/a"],
      ["GET", "/store/a"],
      ["POST", "/lookup/a"],
      ["GET", "/delete/a"],
      ["HEAD", "/healthz"],
      ["GET", "//lookup/a"],
    ] as const) {
      const res = await harness.request({ method, path });
      expect(res.status, `${method} ${path}`).toBe(404);
      if (method !== "HEAD") expect(json(res.text).error).toBe("not_found");
    }
  });

  it("answers malformed HTTP with 400 and keeps serving", async () => {
    harness = await startServer();
    const answer = await new Promise<string>((resolve) => {
      const socket = connect(harness!.socket);
      let text = "";
      socket.on("data", (d) => {
        text += d.toString();
      });
      socket.on("close", () => resolve(text));
      socket.write("THIS IS NOT HTTP\r\n\r\n");
    });
    expect(answer.startsWith("HTTP/1.1 400")).toBe(true);
    expect((await harness.request({ path: "/healthz" })).status).toBe(200);
  });
});

describe("connections", () => {
  it("keeps connections alive across requests", async () => {
    harness = await startServer({
      providers: new Map([["infisical", tableProvider("infisical", { DB: "db.internal" })]]),
    });
    await harness.writeMapping(ID, mappingFor("DB"));
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const answers = [];
      for (let i = 0; i < 5; i++)
        answers.push(await unixRequest(harness.socket, { path: `/lookup/${ID}`, agent }));
      expect(answers.every((a) => a.status === 200 && a.text === "db.internal")).toBe(true);
      expect(new Set(answers.map((a) => a.socketId)).size).toBe(1);
      expect(answers[0]!.headers.connection).toBe("keep-alive");
    } finally {
      agent.destroy();
    }
  });

  it("survives clients hanging up before and during the answer, without error logs", async () => {
    const big = "x".repeat(8 * 1024 * 1024);
    const provider = tableProvider("infisical", { DB: "db.internal", BIG: big });
    harness = await startServer({ providers: new Map([["infisical", provider]]) });
    await harness.writeMapping(ID, mappingFor("DB"));
    await harness.writeMapping("big", mappingFor("BIG"));
    // before: the provider is still working when the client leaves
    provider.hold();
    const early = connect(harness.socket);
    early.write(`GET /lookup/${ID} HTTP/1.1\r\nHost: x\r\n\r\n`);
    while (provider.calls < 1) await new Promise((r) => setTimeout(r, 5));
    early.destroy();
    await new Promise((r) => setTimeout(r, 20));
    provider.release();
    // during: an 8 MiB answer, the client reads a little and resets
    for (let i = 0; i < 3; i++) {
      await new Promise<void>((resolve) => {
        const socket = connect(harness!.socket);
        socket.once("data", () => {
          socket.destroy();
          resolve();
        });
        socket.on("error", () => resolve());
        socket.write("GET /lookup/big HTTP/1.1\r\nHost: x\r\n\r\n");
      });
    }
    // and a request cut in the middle of its headers
    const cut = connect(harness.socket);
    cut.write("GET /lookup/abc HTTP/1.1\r\nHo");
    await new Promise((r) => setTimeout(r, 20));
    cut.destroy();
    await new Promise((r) => setTimeout(r, 50));
    expect((await harness.request({ path: "/healthz" })).status).toBe(200);
    expect((await harness.request({ path: `/lookup/${ID}` })).text).toBe("db.internal");
    const errors = harness.log.records().filter((r) => r.level === "error" || r.level === "warn");
    expect(errors).toEqual([]);
  });
});

describe("GET /metrics", () => {
  it("counts lookups by source and outcome, provider latency and cache entries", async () => {
    const provider = tableProvider("infisical", { DB: "db.internal" });
    const cacheFile = await keyfileCache(await cacheDir(), [{ key: "CACHED", value: "hunter2" }]);
    const store = createCacheStore({
      path: cacheFile.path,
      backend: cacheFile.backend,
      logger: silent,
    });
    await store.load();
    harness = await startServer({
      providers: new Map([["infisical", provider]]),
      cache: store,
      now: () => Date.now(),
    });
    await harness.writeMapping("hit", mappingFor("CACHED"));
    await harness.writeMapping("miss", mappingFor("DB"));
    await harness.request({ path: "/lookup/hit" });
    await harness.request({ path: "/lookup/miss" });
    await harness.request({ path: "/lookup/miss" });
    await harness.request({ path: "/lookup/none" });
    const res = await harness.request({ path: "/metrics" });
    expect(res.status).toBe(200);
    expect(res.headers["content-type"]).toContain("text/plain");
    expect(res.text).toContain('psi_lookups_total{source="file",outcome="ok"} 1');
    expect(res.text).toContain('psi_lookups_total{source="provider",outcome="ok"} 1');
    expect(res.text).toContain('psi_lookups_total{source="memory",outcome="ok"} 1');
    expect(res.text).toContain('psi_lookups_total{source="none",outcome="not_found"} 1');
    expect(res.text).toContain(
      'psi_provider_lookup_duration_seconds_count{provider="infisical"} 1',
    );
    expect(res.text).toContain('psi_cache_entries{origin="file"} 1');
    expect(res.text).toContain('psi_cache_entries{origin="memory"} 1');
    expect(res.text).toMatch(/psi_cache_age_seconds \d/);
    noValuesIn(res.text);
  });

  it("reports the cache.enc on disk now, without waiting for a lookup to reload it", async () => {
    const cacheFile = await keyfileCache(await cacheDir(), [{ key: "A", value: "one" }]);
    const store = createCacheStore({
      path: cacheFile.path,
      backend: cacheFile.backend,
      logger: silent,
    });
    await store.load();
    harness = await startServer({ cache: store });
    const before = await harness.request({ path: "/metrics" });
    expect(before.text).toContain('psi_cache_entries{origin="file"} 1');
    await saveCache({
      path: cacheFile.path,
      backend: cacheFile.backend,
      fetched: ["A", "B"].map((key) => ({ mapping: mappingFor(key), value: Buffer.from(key) })),
      prune: true,
      now: () => 4_000_000_000_000,
    });
    const after = await harness.request({ path: "/metrics" });
    expect(after.text).toContain('psi_cache_entries{origin="file"} 2');
    expect(after.text).toContain("psi_cache_written_timestamp_seconds 4000000000");
  });
});
