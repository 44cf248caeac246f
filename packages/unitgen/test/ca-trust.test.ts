import { execFile, spawn } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { promisify } from "node:util";
import { tempDir } from "@psi/testkit/tmp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { renderServeQuadlet, renderSetupQuadlet } from "../src/index.js";
import { FIXTURE_CASES, IMAGE, settingsFor } from "./configs.js";
import { parseUnit } from "./quadlet-keys.js";
import { hasTool } from "./tools.js";

// ca_cert must be *trusted* by PSI's HTTP clients in its container, not only mounted:
// a Node client started the way the quadlet starts it (the Volume= put over the image's
// bundle in a private mount namespace, the quadlet's Environment= lines) reaches an
// HTTPS server whose certificate only that CA signs.
const run = promisify(execFile);
const canRun =
  hasTool("openssl", "openssl", "openssl", ["version"]) &&
  hasTool("unshare", "unshare (root, mount namespaces)", "util-linux", ["--mount", "true"]);

let dir: { path: string; cleanup: () => Promise<void> };
let server: Server;
let url = "";
beforeAll(async () => {
  dir = await tempDir("psi-unitgen-ca-");
  const p = (name: string) => join(dir.path, name);
  await run("openssl", [
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    p("ca.key"),
    "-out",
    p("ca.pem"),
    "-days",
    "2",
    "-subj",
    "/CN=PSI test CA",
  ]);
  await run("openssl", [
    "req",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    p("server.key"),
    "-out",
    p("server.csr"),
    "-subj",
    "/CN=localhost",
  ]);
  await writeFile(p("ext.cnf"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n");
  await run("openssl", [
    "x509",
    "-req",
    "-in",
    p("server.csr"),
    "-CA",
    p("ca.pem"),
    "-CAkey",
    p("ca.key"),
    "-CAcreateserial",
    "-out",
    p("server.pem"),
    "-days",
    "2",
    "-extfile",
    p("ext.cnf"),
  ]);
  server = createServer(
    { key: await readFile(p("server.key")), cert: await readFile(p("server.pem")) },
    (_req, res) => res.end("trusted"),
  );
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  url = `https://localhost:${(server.address() as AddressInfo).port}/`;
});
afterAll(async () => {
  await new Promise((resolve) => server?.close(resolve));
  await dir?.cleanup();
});

/** Runs a Node fetch of `url` with the quadlet's CA volume and environment applied. */
async function fetchLikeTheContainer(
  quadlet: string,
  dropEnv: string[] = [],
): Promise<{ code: number | null; out: string }> {
  const container = parseUnit(quadlet).get("Container") ?? [];
  const env: Record<string, string> = { PATH: process.env["PATH"] ?? "/usr/bin:/bin" };
  const mounts: string[] = [];
  for (const [key, value] of container) {
    if (key === "Environment") {
      const [name, ...rest] = value.split("=");
      if (!dropEnv.includes(name!)) env[name!] = rest.join("=");
    }
    if (key === "Volume" && value.includes("/etc/ssl/certs/")) {
      const [source, target] = value.split(":");
      // The image's bundle directory, private to this namespace, with the host CA over the bundle.
      mounts.push(
        "mount -t tmpfs tmpfs /etc/ssl/certs",
        `touch ${target}`,
        `mount --bind ${source} ${target}`,
      );
    }
  }
  const client = `fetch(${JSON.stringify(url)}).then((r) => r.text()).then((t) => console.log(t), (e) => { console.log(String(e.cause?.code ?? e)); process.exit(3); })`;
  const script = [...mounts, `exec ${process.execPath} -e '${client}'`].join(" && ");
  return new Promise((resolve) => {
    const child = spawn(
      "unshare",
      ["--mount", "--propagation", "private", "--", "sh", "-c", script],
      { env, stdio: ["ignore", "pipe", "pipe"] },
    );
    let out = "";
    child.stdout.on("data", (c: Buffer) => {
      out += c;
    });
    child.stderr.on("data", (c: Buffer) => {
      out += c;
    });
    child.on("exit", (code) => resolve({ code, out: out.trim() }));
  });
}

describe.skipIf(!canRun)("ca_cert is trusted inside the containers", () => {
  it("serve and setup quadlets: Node's fetch trusts the mounted CA", async () => {
    const settings = {
      ...(await settingsFor(FIXTURE_CASES[0]!)),
      caCert: join(dir.path, "ca.pem"),
    };
    for (const quadlet of [
      renderServeQuadlet(settings, { image: IMAGE }),
      renderSetupQuadlet(settings, "infisical", { image: IMAGE }),
    ]) {
      expect(await fetchLikeTheContainer(quadlet)).toEqual({ code: 0, out: "trusted" });
    }
  });

  it("mounting it with SSL_CERT_FILE alone (the reference's lines) does not make Node trust it", async () => {
    const settings = {
      ...(await settingsFor(FIXTURE_CASES[0]!)),
      caCert: join(dir.path, "ca.pem"),
    };
    const result = await fetchLikeTheContainer(renderServeQuadlet(settings, { image: IMAGE }), [
      "NODE_EXTRA_CA_CERTS",
    ]);
    expect(result.code).toBe(3);
    expect(result.out).toMatch(/UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED|unable to verify/i);
  });
});
