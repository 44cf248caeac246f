import { mkdir, readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { isPsiError, type PsiError } from "@psi/core";
import { createPodmanClient, type PodmanClient, podmanSocketPath } from "@psi/podman";
import { type PodmanSandbox, podmanAvailable, podmanSandbox } from "@psi/testkit/podman";
import { requireTool, tempDir } from "@psi/testkit/tmp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// The client against a real Podman service. The shell driver here is plain `cat`/`ls`/`rm`
// on a directory so these tests exercise the REST client alone; the PSI driver path is
// covered end to end in apps/psi/test/podman-e2e.test.ts.
const skip = requireTool(podmanAvailable(), "podman", "podman");

describe.skipIf(skip)("Podman REST client (real Podman 4.x)", () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  let sandbox: PodmanSandbox;
  let client: PodmanClient;
  let store: string;
  let conf: Record<string, string>;

  beforeAll(async () => {
    dir = await tempDir("psi-podman-");
    store = join(dir.path, "driver");
    await mkdir(store);
    conf = {
      store: `cat > ${store}/$SECRET_ID`,
      lookup: `cat ${store}/$SECRET_ID`,
      delete: `rm ${store}/$SECRET_ID`,
      list: `ls ${store}`,
    };
    const text =
      '[secrets]\ndriver = "shell"\n\n[secrets.opts]\n' +
      Object.entries(conf)
        .map(([key, value]) => `${key} = "${value}"`)
        .join("\n") +
      "\n";
    sandbox = await podmanSandbox(dir.path, text);
    await sandbox.startService();
    client = createPodmanClient({ socketPath: sandbox.socketPath });
  });

  afterAll(async () => {
    await sandbox?.stop();
    await dir?.cleanup();
  });

  it("answers a ping", async () => {
    await expect(client.ping()).resolves.toBeUndefined();
  });

  it("creates a shell secret whose driver receives exactly the bytes sent", async () => {
    const mapping = Buffer.from('{"provider": "local", "blob": "AQID\\u00e9"}\n\u0000\u00ff');
    const { id } = await client.createSecret("app--ONE", mapping);
    expect(id).toMatch(/^[0-9a-f]{25}$/);
    expect(await readFile(join(store, id))).toEqual(mapping);
  });

  it("lists secrets with name, ID, driver and driver options", async () => {
    const { id } = await client.createSecret("app--LIST", Buffer.from("x"));
    const listed = await client.listSecrets();
    const entry = listed.find((secret) => secret.name === "app--LIST");
    expect(entry).toMatchObject({ id, name: "app--LIST", driver: "shell", driverOptions: conf });
    expect(listed.map((secret) => secret.name)).toContain("app--ONE");
  });

  it("inspects by name and by ID, and answers undefined for an unknown secret", async () => {
    const { id } = await client.createSecret("app--INSPECT", Buffer.from("x"), {
      labels: { owner: "psi" },
    });
    expect(await client.inspectSecret("app--INSPECT")).toMatchObject({
      id,
      driver: "shell",
      labels: { owner: "psi" },
    });
    expect((await client.inspectSecret(id))?.name).toBe("app--INSPECT");
    expect(await client.inspectSecret("app--NOPE")).toBeUndefined();
  });

  it("reports a name in use with the status and Podman's message", async () => {
    await client.createSecret("app--DUP", Buffer.from("x"));
    const error = await client.createSecret("app--DUP", Buffer.from("y")).catch((e: unknown) => e);
    expect(isPsiError(error, "podman.secret_exists")).toBe(true);
    expect((error as PsiError).message).toMatch(/500 .*secret name in use/);
  });

  it("reports Podman's refusal of an empty value", async () => {
    const error = await client
      .createSecret("app--EMPTY", new Uint8Array())
      .catch((e: unknown) => e);
    expect(isPsiError(error, "podman.api_error")).toBe(true);
    expect((error as PsiError).message).toMatch(
      /creating secret app--EMPTY: 500 secret data must be larger than 0/,
    );
  });

  it("deletes through the driver, and a missing secret is not an error", async () => {
    const { id } = await client.createSecret("app--DEL", Buffer.from("x"));
    expect(await readdir(store)).toContain(id);
    expect(await client.deleteSecret("app--DEL")).toBe(true);
    expect(await readdir(store)).not.toContain(id);
    expect(await client.deleteSecret("app--DEL")).toBe(false);
  });

  it("replaces a secret: delete (if present) then create", async () => {
    const first = await client.replaceSecret("app--REPL", Buffer.from("one"));
    const second = await client.replaceSecret("app--REPL", Buffer.from("two"));
    expect(second.id).not.toBe(first.id);
    const files = await readdir(store);
    expect(files).not.toContain(first.id);
    expect(await readFile(join(store, second.id), "utf8")).toBe("two");
  });

  it("says how to start Podman when nothing listens on the socket", async () => {
    const missing = createPodmanClient({
      socketPath: join(dir.path, "absent.sock"),
      scope: "user",
    });
    const error = await missing.listSecrets().catch((e: unknown) => e);
    expect(isPsiError(error, "podman.unreachable")).toBe(true);
    expect((error as PsiError).message).toContain(join(dir.path, "absent.sock"));
    expect((error as PsiError).hint).toContain("systemctl --user enable --now podman.socket");
  });
});

describe("podmanSocketPath", () => {
  it("prefers the flag, then PSI_PODMAN_SOCKET, then the scope default", () => {
    const env = { PSI_PODMAN_SOCKET: "/env.sock" };
    expect(podmanSocketPath({ flag: "/flag.sock", env, defaultPath: "/d.sock" })).toBe(
      "/flag.sock",
    );
    expect(podmanSocketPath({ env, defaultPath: "/d.sock" })).toBe("/env.sock");
    expect(podmanSocketPath({ env: {}, defaultPath: "/d.sock" })).toBe("/d.sock");
    expect(
      podmanSocketPath({ flag: "", env: { PSI_PODMAN_SOCKET: "" }, defaultPath: "/d.sock" }),
    ).toBe("/d.sock");
  });
});
