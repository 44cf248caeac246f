import { ConfigSchema, defaultPaths, type PsiContext } from "@psi/core";
import * as v from "valibot";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createInfisicalProvider, infisicalProvider } from "../src/index.js";
import {
  CLIENT_ID,
  CLIENT_SECRET,
  type FakeWorld,
  fakeWorld,
  memoryLogger,
  PROJECT_ID,
} from "./helpers.js";

let world: FakeWorld;
beforeEach(async () => {
  world = await fakeWorld();
  world.put("/app", "DB_HOST", "db.internal");
  world.put("/app/sub", "NESTED", "n");
  world.put("/common", "IMPORTED", "i");
  world.fake.addImport({
    projectId: PROJECT_ID,
    environment: "prod",
    path: "/app",
    from: { environment: "prod", path: "/common" },
  });
});
afterEach(async () => {
  await world.cleanup();
});

function context(extra: Record<string, unknown> = {}): PsiContext {
  const config = v.parse(ConfigSchema, {
    state_dir: world.stateDir,
    providers: {
      infisical: {
        api_url: world.fake.url,
        auth: { method: "universal-auth", client_id: CLIENT_ID, client_secret: CLIENT_SECRET },
        projects: { app: { id: PROJECT_ID, environment: "prod" }, ...extra },
        retry_delays: [0.01],
        lookup_timeout: 1,
        setup_timeout: 2,
      },
    },
  });
  return {
    config,
    scope: "user",
    paths: { ...defaultPaths("user", {}, 1000, world.stateDir), stateDir: world.stateDir },
    logger: memoryLogger(),
    env: {},
  };
}

describe("the infisical provider", () => {
  it("is named infisical and looks a mapping up live", async () => {
    const provider = infisicalProvider(context());
    expect(provider.name).toBe("infisical");
    await provider.open();
    const value = await provider.lookup({
      provider: "infisical",
      project: "app",
      path: "/app",
      key: "DB_HOST",
    });
    expect(Buffer.from(value).toString("utf8")).toBe("db.internal");
    await provider.close();
  });

  it("rejects a mapping without project, path or key", async () => {
    const provider = infisicalProvider(context());
    await expect(
      provider.lookup({ provider: "infisical", project: "app", key: "X" }),
    ).rejects.toMatchObject({
      code: "provider.bad_mapping",
    });
  });

  it("lists a source with mappings named by each secret's actual path, in the reference's bytes", async () => {
    const provider = createInfisicalProvider()(context());
    const fetched = await provider.listSource!({ project: "app", path: "/app", recursive: true });
    const byKey = new Map(fetched.map((secret) => [secret.key, secret]));
    expect([...byKey.keys()].sort()).toEqual(["DB_HOST", "IMPORTED", "NESTED"]);
    const nested = byKey.get("NESTED")!;
    expect(nested.mapping).toEqual({
      provider: "infisical",
      project: "app",
      path: "/app/sub",
      key: "NESTED",
    });
    expect(Buffer.from(nested.mappingBytes).toString("utf8")).toBe(
      '{"provider": "infisical", "project": "app", "path": "/app/sub", "key": "NESTED"}',
    );
    expect(Buffer.from(nested.value).toString("utf8")).toBe("n");
    // Mapped to the folder that imports it: a lookup there finds it through include_imports.
    expect(byKey.get("IMPORTED")!.mapping).toMatchObject({ path: "/app" });
    for (const secret of fetched) {
      expect(Buffer.from(await provider.lookup(secret.mapping)).toString("utf8")).toBe(
        Buffer.from(secret.value).toString("utf8"),
      );
    }
  });

  it("applies source defaults (path /, recursive false)", async () => {
    world.put("/", "ROOT", "r");
    const fetched = await infisicalProvider(context()).listSource!({ project: "app" });
    expect(fetched.map((secret) => secret.key)).toEqual(["ROOT"]);
  });

  it("gives equal source keys to equal sources and different ones otherwise", () => {
    const provider = infisicalProvider(context({ alias: { id: PROJECT_ID, environment: "prod" } }));
    const key = provider.sourceKey!;
    expect(key({ project: "app", path: "/app" })).toBe(
      key({ project: "app", path: "/app/", recursive: false }),
    );
    expect(key({ project: "app", path: "/app" })).not.toBe(
      key({ project: "app", path: "/app", recursive: true }),
    );
    expect(key({ project: "app", path: "/app" })).not.toBe(key({ project: "alias", path: "/app" }));
    expect(key({ project: "app", path: "/app" })).not.toBe(key({ project: "app", path: "/other" }));
  });

  it("says when providers.infisical is missing", async () => {
    const bare = { ...context(), config: v.parse(ConfigSchema, {}) };
    await expect(infisicalProvider(bare).open()).rejects.toMatchObject({
      code: "provider.not_configured",
    });
  });
});
