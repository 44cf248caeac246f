import { createPrivateKey, X509Certificate } from "node:crypto";
import { mkdir, readdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type CertificateConfig, CertificateSchema } from "@psi/core";
import * as v from "valibot";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createTlsManager, type HookRunner, tlsRunOk, tlsStateFileName } from "../src/index.js";
import { type FakeWorld, fakeWorld, PROJECT_ID } from "./helpers.js";

const DAY = 86_400_000;
let world: FakeWorld;
let out: string;

beforeEach(async () => {
  world = await fakeWorld();
  world.fake.addCertificateProfile({ profileId: "profile-web", projectId: PROJECT_ID });
  out = join(world.stateDir, "pki");
  await mkdir(out);
});
afterEach(async () => {
  await world.cleanup();
});

function certificate(raw: Record<string, unknown> = {}): CertificateConfig {
  return v.parse(CertificateSchema, {
    project: "app",
    profile_id: "profile-web",
    common_name: "web.example.test",
    alt_names: [{ type: "dns_name", value: "www.example.test" }],
    ttl: "90d",
    renew_before: "30d",
    output: {
      cert: join(out, "cert.pem"),
      key: join(out, "key.pem"),
      chain: join(out, "chain.pem"),
      ca: join(out, "ca.pem"),
      mode: "0644",
    },
    ...raw,
  });
}

function manager(
  certificates: Record<string, CertificateConfig>,
  options: { now?: () => number; runHook?: HookRunner; env?: Record<string, string> } = {},
) {
  return createTlsManager({
    client: world.client(),
    certificates,
    stateDir: world.stateDir,
    logger: world.logger,
    env: options.env ?? { PATH: process.env["PATH"] ?? "/usr/bin:/bin" },
    ...(options.now ? { now: options.now } : {}),
    ...(options.runHook ? { runHook: options.runHook } : {}),
  });
}

const mode = async (path: string) => (await stat(path)).mode & 0o777;

describe("tls issue", () => {
  it("issues, writes every file with its mode, keeps the state, then runs the hooks", async () => {
    const marker = join(world.stateDir, "hook.out");
    const tls = manager({
      web: certificate({
        hooks: [`sh -c 'printf "%s %s" "$PSI_TLS_CERTIFICATE" "$1" > ${marker}' hook "arg one"`],
      }),
    });
    const results = await tls.issue();
    const [result] = results;
    expect(result).toMatchObject({ name: "web", action: "issued", hooks: [{ ok: true }] });
    expect(tlsRunOk(results)).toBe(true);
    expect(world.fake.certificates).toHaveLength(1);
    const issued = world.fake.certificates[0]!;
    expect(issued).toMatchObject({
      profileId: "profile-web",
      commonName: "web.example.test",
      altNames: [{ type: "dns_name", value: "www.example.test" }],
      ttl: "90d",
    });
    const pem = await readFile(join(out, "cert.pem"), "utf8");
    expect(pem).toBe(
      issued.certificate.endsWith("\n") ? issued.certificate : `${issued.certificate}\n`,
    );
    const x509 = new X509Certificate(pem);
    expect(result?.serialNumber).toBe(x509.serialNumber.toLowerCase());
    expect(new Date(result!.notAfter!).getTime()).toBe(new Date(x509.validTo).getTime());
    expect(await readFile(join(out, "key.pem"), "utf8")).toContain("PRIVATE KEY");
    expect(await mode(join(out, "key.pem"))).toBe(0o600);
    for (const name of ["cert.pem", "chain.pem", "ca.pem"]) {
      expect(await mode(join(out, name))).toBe(0o644);
    }
    expect(await readFile(marker, "utf8")).toBe("web arg one");
    const state = JSON.parse(await readFile(join(world.stateDir, tlsStateFileName("web")), "utf8"));
    expect(state).toMatchObject({
      certificate_id: issued.certificateId,
      serial_number: result?.serialNumber,
      not_after: result?.notAfter,
      common_name: "web.example.test",
    });
    expect(await mode(join(world.stateDir, ".tls.web.json"))).toBe(0o600);
    // Only the outputs and dot files: no temp files left behind.
    expect((await readdir(out)).sort()).toEqual(["ca.pem", "cert.pem", "chain.pem", "key.pem"]);
    expect(JSON.stringify(world.logger.lines)).not.toContain("PRIVATE KEY");
  });

  it("a stricter configured mode applies to the key too", async () => {
    await manager({
      web: certificate({ output: { ...certificate().output, mode: "0400" } }),
    }).issue();
    expect(await mode(join(out, "key.pem"))).toBe(0o400);
    expect(await mode(join(out, "cert.pem"))).toBe(0o400);
  });

  it("a failing hook fails the certificate after the files are written, later hooks do not run", async () => {
    const later = join(world.stateDir, "later");
    const results = await manager({
      web: certificate({ hooks: ["sh -c 'echo reload failed >&2; exit 3'", `touch ${later}`] }),
    }).issue();
    const [result] = results;
    expect(result).toMatchObject({ action: "failed", error: { code: "tls.hook_failed" } });
    expect(tlsRunOk(results)).toBe(false);
    expect(result?.error?.message).toContain("exited with status 3: reload failed");
    expect(result?.hooks.map((hook) => hook.ok)).toEqual([false, false]);
    expect(result?.hooks[1]?.error).toBe("not run: an earlier hook failed");
    expect(await stat(join(out, "cert.pem"))).toBeTruthy();
    await expect(stat(later)).rejects.toThrow();
  });

  it("a hook that is not a plain command fails before anything is issued", async () => {
    const [result] = await manager({
      web: certificate({ hooks: ["systemctl reload nginx && echo done"] }),
    }).issue();
    expect(result).toMatchObject({ action: "failed", error: { code: "tls.bad_hook" } });
    expect(world.fake.certificates).toHaveLength(0);
  });

  it("an unwritable target fails that certificate and leaves no state; others still issue", async () => {
    await writeFile(join(world.stateDir, "not-a-dir"), "");
    const broken = certificate({
      output: { ...certificate().output, cert: join(world.stateDir, "not-a-dir", "cert.pem") },
    });
    const other = join(world.stateDir, "other");
    await mkdir(other);
    const fine = certificate({
      output: {
        cert: join(other, "c.pem"),
        key: join(other, "k.pem"),
        chain: join(other, "ch.pem"),
        mode: "0640",
      },
    });
    const results = await manager({ broken, fine }).issue();
    expect(results.map((result) => result.action)).toEqual(["failed", "issued"]);
    expect(results[0]?.error?.code).toBe("fs.write_failed");
    await expect(stat(join(world.stateDir, ".tls.broken.json"))).rejects.toThrow();
    expect(await mode(join(other, "k.pem"))).toBe(0o600);
    expect(await mode(join(other, "c.pem"))).toBe(0o640);
  });

  it("names an unknown certificate", async () => {
    await expect(manager({ web: certificate() }).issue(["nope"])).rejects.toMatchObject({
      code: "tls.unknown_certificate",
    });
  });

  it("reports auth failures per certificate", async () => {
    const tls = createTlsManager({
      client: world.client(
        {},
        { auth: { method: "universal-auth", client_id: "x", client_secret: "y" } },
      ),
      certificates: { web: certificate() },
      stateDir: world.stateDir,
    });
    const [result] = await tls.issue();
    expect(result).toMatchObject({ action: "failed", error: { code: "provider.auth_failed" } });
  });
});

describe("tls renew", () => {
  it("renews only within renew_before of expiry, or with force", async () => {
    let now = Date.now();
    const tls = manager({ web: certificate() }, { now: () => now });
    await tls.issue();
    const first = world.fake.certificates[0]!.certificateId;

    // 90-day certificate, 30-day window: not due today, nor at day 59.
    expect((await tls.renew())[0]).toMatchObject({ action: "skipped" });
    now = Date.now() + 59 * DAY;
    expect((await tls.renew())[0]).toMatchObject({ action: "skipped", daysLeft: 30 });
    expect(world.fake.count("POST", "/api/v1/cert-manager/certificates/")).toBe(0);

    now = Date.now() + 61 * DAY;
    const [renewed] = await tls.renew();
    expect(renewed).toMatchObject({ action: "renewed" });
    expect(world.fake.certificates[1]?.renewedFrom).toBe(first);
    const state = JSON.parse(await readFile(join(world.stateDir, ".tls.web.json"), "utf8"));
    expect(state.certificate_id).toBe(world.fake.certificates[1]?.certificateId);

    now = Date.now();
    expect((await tls.renew(["web"], { force: true }))[0]).toMatchObject({ action: "renewed" });
    expect(world.fake.certificates[2]?.renewedFrom).toBe(state.certificate_id);
  });

  it("issues a certificate that was never issued, and one Infisical no longer knows", async () => {
    const tls = manager({ web: certificate() });
    expect((await tls.renew())[0]).toMatchObject({ action: "issued" });
    await writeFile(
      join(world.stateDir, ".tls.web.json"),
      JSON.stringify({
        certificate_id: "gone",
        serial_number: "00",
        not_after: new Date().toISOString(),
        issued_at: new Date().toISOString(),
        common_name: "web.example.test",
        profile_id: "profile-web",
      }),
    );
    expect((await tls.renew(undefined, { force: true }))[0]).toMatchObject({ action: "issued" });
    expect(world.fake.certificates).toHaveLength(2);
    expect(world.fake.certificates[1]?.renewedFrom).toBeUndefined();
  });

  it("status: expiry, days left and renew due, from the file on disk", async () => {
    let now = Date.now();
    const tls = manager(
      {
        web: certificate(),
        later: certificate({ output: { ...certificate().output, cert: join(out, "none.pem") } }),
      },
      { now: () => now },
    );
    const before = await tls.status();
    expect(before.map((status) => [status.name, status.present, status.renewDue])).toEqual([
      ["web", false, true],
      ["later", false, true],
    ]);
    await tls.issue(["web"]);
    const [web] = await tls.status(["web"]);
    expect(web).toMatchObject({ present: true, renewDue: false, commonName: "web.example.test" });
    expect(web?.daysLeft).toBeGreaterThanOrEqual(89);
    now = Date.now() + 70 * DAY;
    expect((await tls.status(["web"]))[0]).toMatchObject({ renewDue: true });
    await writeFile(join(out, "cert.pem"), "garbage");
    expect((await tls.status(["web"]))[0]).toMatchObject({ renewDue: true, present: true });
    expect((await tls.status(["web"]))[0]?.error).toContain("no valid PEM");
  });
});

describe("certificates that wait for approval, and renewals that keep the key", () => {
  it("reports a pending request, keeps waiting on renew, deploys it once approved", async () => {
    world.fake.requireCertificateApproval(true);
    const tls = manager({ web: certificate() });
    const issued = await tls.issue(["web"]);
    const [first] = issued;
    expect(first).toMatchObject({ name: "web", action: "pending" });
    expect(tlsRunOk(issued)).toBe(false);
    expect(first?.requestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(first?.reason).toContain("psi infisical tls renew web");
    await expect(stat(join(out, "cert.pem"))).rejects.toMatchObject({ code: "ENOENT" });
    const pendingFile = join(world.stateDir, ".tls.web.pending.json");
    expect(await mode(pendingFile)).toBe(0o600);

    // Still waiting: renew asks about the same request and makes no new one.
    const [waiting] = await tls.renew(["web"]);
    expect(waiting).toMatchObject({ action: "pending", requestId: first?.requestId });
    expect(world.fake.count("POST", "/api/v1/cert-manager/certificates")).toBe(1);

    await world.fake.approveCertificates();
    const renewed = await tls.renew(["web"]);
    const [deployed] = renewed;
    expect(deployed).toMatchObject({ action: "issued" });
    expect(tlsRunOk(renewed)).toBe(true);
    const cert = new X509Certificate(await readFile(join(out, "cert.pem"), "utf8"));
    expect(cert.subject).toContain("CN=web.example.test");
    expect(cert.checkIssued(new X509Certificate(await readFile(join(out, "ca.pem"), "utf8")))).toBe(
      true,
    );
    expect(
      cert.checkPrivateKey(createPrivateKey(await readFile(join(out, "key.pem"), "utf8"))),
    ).toBe(true);
    await expect(stat(pendingFile)).rejects.toMatchObject({ code: "ENOENT" });
    expect(world.fake.count("POST", "/api/v1/cert-manager/certificates")).toBe(1);
  });

  it("keeps the deployed key when a renewal comes without one, and refuses a key that does not fit", async () => {
    let clock = Date.now();
    const tls = manager({ web: certificate() }, { now: () => clock });
    await tls.issue(["web"]);
    const key = await readFile(join(out, "key.pem"), "utf8");
    world.fake.renewWithoutPrivateKey(true);
    const [renewed] = await tls.renew(["web"], { force: true });
    expect(renewed).toMatchObject({ action: "renewed" });
    expect(await readFile(join(out, "key.pem"), "utf8")).toBe(key);
    const cert = new X509Certificate(await readFile(join(out, "cert.pem"), "utf8"));
    expect(cert.serialNumber.toLowerCase()).toBe(renewed?.serialNumber);
    expect(cert.checkPrivateKey(createPrivateKey(key))).toBe(true);

    // The key on disk was replaced by another one: the key-less renewal cannot be used.
    world.fake.renewWithoutPrivateKey(false);
    const other = await tls.issue(["web"]);
    expect(other[0]?.action).toBe("issued");
    await writeFile(join(out, "key.pem"), key);
    world.fake.renewWithoutPrivateKey(true);
    clock += DAY;
    const before = await readFile(join(out, "cert.pem"), "utf8");
    const [refused] = await tls.renew(["web"], { force: true });
    expect(refused).toMatchObject({ action: "failed", error: { code: "tls.no_private_key" } });
    expect(await readFile(join(out, "cert.pem"), "utf8")).toBe(before);
  });
});
