import { readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { saveCache } from "@psi/cache";
import { createKeyfileCacheBackend, initKeyfile } from "@psi/cache-keyfile";
import {
  isPsiError,
  loadConfig,
  makeContext,
  type ProviderFactory,
  type PsiContext,
} from "@psi/core";
import { tempDir } from "@psi/testkit/tmp";
import { captureLogger } from "@psi/testkit/unix-http";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  listMappingIds,
  lookupOnce,
  removeMappingOnce,
  secretIdFromEnv,
  storeMappingOnce,
} from "../src/index.js";
import { mappingFor, type TableProvider, tableProvider } from "./helpers.js";

// `psi secret store|lookup|delete|list` as library calls: real files in a temp state_dir,
// a configuration loaded from disk, providers built by a factory as the CLI's wiring does.

const ID = "a1b2c3d4e5f6a7b8c9d0e1f2a";
let dir: { path: string; cleanup: () => Promise<void> };
let stateDir: string;
let context: PsiContext;
const log = captureLogger();
const options = () => ({ stateDir, logger: log.logger });

beforeEach(async () => {
  dir = await tempDir("psi-oneshot-");
  stateDir = join(dir.path, "state");
  const file = join(dir.path, "config.yaml");
  await writeFile(
    file,
    `state_dir: ${stateDir}
providers:
  local: {}
  infisical:
    api_url: http://127.0.0.1:9
    auth: { method: universal-auth, client_id: id, client_secret: secret }
    projects: { proj: { id: p, environment: prod } }
`,
  );
  const loaded = await loadConfig({ path: file, env: {}, uid: process.getuid!() });
  context = makeContext(loaded, { logger: log.logger, env: {} });
});
afterEach(async () => {
  await dir.cleanup();
});

/** A factory per provider name that records which providers were built and closed. */
function factories(table: Record<string, TableProvider>) {
  const built: string[] = [];
  const closed: string[] = [];
  return {
    built,
    closed,
    async providerFactory(name: string): Promise<ProviderFactory> {
      return () => {
        built.push(name);
        const provider = table[name] ?? tableProvider(name);
        return {
          ...provider,
          close: async () => {
            closed.push(name);
          },
        };
      };
    },
  };
}

async function failure(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => undefined,
    (error: unknown) => error,
  );
}

describe("secretIdFromEnv", () => {
  it("reads SECRET_ID as Podman's shell driver sets it; unset is secret_id.missing with a hint", () => {
    expect(secretIdFromEnv({ SECRET_ID: ID, PATH: "/bin" })).toBe(ID);
    // An empty ID is passed on: the operation refuses it as secret_id.invalid.
    expect(secretIdFromEnv({ SECRET_ID: "" })).toBe("");
    let thrown: unknown;
    try {
      secretIdFromEnv({ PATH: "/bin" });
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toMatchObject({
      code: "secret_id.missing",
      message: "SECRET_ID is not set",
      hint: expect.stringContaining("SECRET_ID=<hex id> psi secret lookup"),
    });
  });
});

describe("storeMappingOnce", () => {
  it("writes the mapping 0600; a bad ID is refused before reading, a non-mapping writes nothing", async () => {
    const mapping = Buffer.from(JSON.stringify(mappingFor("KEY")));
    await storeMappingOnce({ ...options(), id: ID, read: async () => mapping });
    expect(await readFile(join(stateDir, ID))).toEqual(mapping);
    expect((await stat(join(stateDir, ID))).mode & 0o777).toBe(0o600);

    let read = false;
    const badId = await failure(
      storeMappingOnce({
        ...options(),
        id: "../escape",
        read: async () => {
          read = true;
          return mapping;
        },
      }),
    );
    expect(isPsiError(badId)).toBe(true);
    expect(read).toBe(false);

    const other = "b1b2c3d4e5f6a7b8c9d0e1f2a";
    const notMapping = await failure(
      storeMappingOnce({ ...options(), id: other, read: async () => Buffer.from("[1, 2]") }),
    );
    expect(isPsiError(notMapping)).toBe(true);
    expect(listMappingIds(options())).toEqual([ID]);
  });
});

describe("lookupOnce", () => {
  it("opens only the provider the mapping names, answers, and closes it", async () => {
    await storeMappingOnce({
      ...options(),
      id: ID,
      read: async () => Buffer.from(JSON.stringify(mappingFor("KEY"))),
    });
    const opened = factories({ infisical: tableProvider("infisical", { KEY: "the-value" }) });
    const value = await lookupOnce({
      id: ID,
      context,
      cacheFile: join(stateDir, "cache.enc"),
      providerFactory: opened.providerFactory,
    });
    expect(Buffer.from(value).toString()).toBe("the-value");
    expect(opened.built).toEqual(["infisical"]);
    expect(opened.closed).toEqual(["infisical"]);
  });

  it("reads the cache file the configuration names when the caller names none", async () => {
    const keyFile = join(dir.path, "cache.keyfile");
    const cacheFile = join(dir.path, "elsewhere", "custom.enc");
    await initKeyfile({ path: keyFile });
    const writer = createKeyfileCacheBackend({ path: keyFile });
    await writer.open();
    await saveCache({
      path: cacheFile,
      backend: writer,
      fetched: [{ mapping: mappingFor("KEY"), value: Buffer.from("from-the-cache") }],
      prune: true,
    });
    await writer.close();
    const file = join(dir.path, "cached.yaml");
    await writeFile(
      file,
      `state_dir: ${stateDir}\ncache: { enabled: true, backend: keyfile, key_file: ${keyFile}, path: ${cacheFile} }\n` +
        "providers:\n  infisical:\n    api_url: http://127.0.0.1:9\n" +
        "    auth: { method: universal-auth, client_id: id, client_secret: secret }\n" +
        "    projects: { proj: { id: p, environment: prod } }\n",
    );
    const cached = makeContext(await loadConfig({ path: file, env: {}, uid: process.getuid!() }), {
      logger: log.logger,
      env: {},
    });
    cached.openCacheBackend = async () => {
      const backend = createKeyfileCacheBackend({ path: keyFile });
      await backend.open();
      return backend;
    };
    await storeMappingOnce({
      ...options(),
      id: ID,
      read: async () => Buffer.from(JSON.stringify(mappingFor("KEY"))),
    });
    // The provider would answer something else: the value must come from custom.enc.
    const opened = factories({ infisical: tableProvider("infisical", { KEY: "live" }) });
    const value = await lookupOnce({
      id: ID,
      context: cached,
      providerFactory: opened.providerFactory,
    });
    expect(Buffer.from(value).toString()).toBe("from-the-cache");
    expect(opened.built).toEqual([]);
  });

  it("refuses a bad ID before opening anything", async () => {
    const opened = factories({});
    const error = await failure(
      lookupOnce({
        id: "not-an-id!",
        context,
        cacheFile: join(stateDir, "cache.enc"),
        providerFactory: opened.providerFactory,
      }),
    );
    expect(isPsiError(error)).toBe(true);
    expect(opened.built).toEqual([]);
  });
});

describe("removeMappingOnce and listMappingIds", () => {
  it("lists nothing before state_dir exists; removes a mapping, absent is fine", async () => {
    expect(listMappingIds(options())).toEqual([]);
    await storeMappingOnce({
      ...options(),
      id: ID,
      read: async () => Buffer.from(JSON.stringify(mappingFor("KEY"))),
    });
    expect(listMappingIds(options())).toEqual([ID]);
    removeMappingOnce({ ...options(), id: ID });
    removeMappingOnce({ ...options(), id: ID });
    expect(listMappingIds(options())).toEqual([]);
  });
});
