import { readSecretInput } from "@psi/core";
import type { PcscdSetupOptions } from "@psi/ops";
import { type Command, Option } from "commander";
import type { App } from "../app.js";
import { UsageError } from "../errors.js";
import { addStoreCommand } from "../store-secret.js";
import { columnWidth, failedOf, labelled, reloadLines, statusLine, withHint } from "../text.js";

// Loaded on use: the provider pulls in graphene-pk11 and its native addon, which every
// other psi command (psi serve on each boot first of all) must not pay for.
const hsmProvider = () => import("@psi/provider-nitrokeyhsm");

/** The nitrokeyhsm settings of this run's configuration (warning when on the defaults). */
async function hsmSettings(app: App) {
  const loaded = await app.loadConfig();
  const provider = await hsmProvider();
  return { provider, settings: provider.nitrokeyHsmSettings(loaded, app.logger()) };
}

const MARK = { ok: "ok  ", fail: "FAIL", skip: "skip" } as const;

/** `psi nitrokeyhsm preflight|init|store|status|test-pin|setup-pcscd` (SPEC §8.2, §11). */
export function registerNitrokeyHsm(program: Command, app: App): void {
  const group = program
    .command("nitrokeyhsm")
    .description("the PKCS#11 HSM (Nitrokey HSM): check, pin its key, store secrets for it");

  group
    .command("preflight")
    .description(
      "check the HSM step by step (module, token, PIN, login, key, public key, OAEP round trip, pin); exit 1 on any failure",
    )
    .action(async () => {
      const { provider, settings } = await hsmSettings(app);
      const report = await provider.preflightNitrokeyHsm({ ...settings, env: app.env });
      if (!report.ok) app.exitCode = 1;
      app.report(report, () => {
        const width = columnWidth(report.steps.map((step) => step.title));
        // The mark first (`ok  `, `FAIL`, `skip`), then the step; a fix under the detail.
        const lines = report.steps.map((step) =>
          withHint(
            statusLine(MARK[step.status], step.title, step.detail, [4, width]),
            step.fix,
            width + 8,
            "fix",
          ),
        );
        const failed = report.steps.filter((step) => step.status === "fail").length;
        lines.push(
          report.ok
            ? "preflight passed: the HSM is ready"
            : `preflight failed: ${failedOf(failed, report.steps.length, "check")}`,
        );
        return lines.join("\n");
      });
    });

  group
    .command("init")
    .description("export the HSM's public key into the public key cache and pin its fingerprint")
    .option(
      "--force",
      "re-pin a different key (a token replaced on purpose; its old secrets become unreadable)",
    )
    .action(async (options: { force?: boolean }) => {
      const { provider, settings } = await hsmSettings(app);
      const result = await provider.initNitrokeyHsm({
        ...settings,
        env: app.env,
        logger: app.logger(),
        force: options.force === true,
      });
      app.output(result, () => {
        const what = !result.changed
          ? "already pinned"
          : result.previous === null
            ? "pinned"
            : `re-pinned (was sha256:${result.previous})`;
        const { info } = result;
        return [
          `${what}: HSM key sha256:${result.fingerprint}`,
          ...labelled([
            [
              "token",
              `"${info.tokenLabel}" (slot ${info.slot}, ${info.tokenModel}, serial ${info.tokenSerial})`,
            ],
            ["key", `CKA_ID ${info.keyId || "(none)"}, label "${info.keyLabel}"`],
            ["public key", result.publicKeyCachePath],
            ["pin", result.pinPath],
          ]).map((line) => `  ${line}`),
        ].join("\n");
      });
    });

  addStoreCommand(
    group,
    app,
    "seal stdin for the HSM's public key and register it as Podman secret NAME (shell driver); " +
      "with --mapping-only print the mapping for `podman secret create --driver shell NAME -`. Needs no token.",
    async (name) => {
      const loaded = await app.loadConfig();
      const { sealNitrokeyHsmSecret } = await hsmProvider();
      const stored = await sealNitrokeyHsmSecret(loaded, () =>
        readSecretInput(app.io.stdin, `nitrokeyhsm store ${name}`),
      );
      return {
        mapping: stored.bytes,
        where: loaded,
        json: { fingerprint: stored.fingerprint },
        text: (id) =>
          `stored nitrokeyhsm secret ${name} (Podman secret ID ${id}, HSM key sha256:${stored.fingerprint})`,
      };
    },
  );

  group
    .command("status")
    .description(
      "token, key, fingerprint, pin and the number of nitrokeyhsm secrets; exit 1 when the token fails or the pin mismatches",
    )
    .option("--offline", "do not log in to the token (pin, public key cache and secrets only)")
    .action(async (options: { offline?: boolean }) => {
      const { provider, settings } = await hsmSettings(app);
      const status = await provider.nitrokeyHsmStatus({
        ...settings,
        env: app.env,
        offline: options.offline === true,
      });
      const verdict = provider.judgeNitrokeyHsmStatus(status);
      if (!verdict.ok) app.exitCode = 1;
      const json = { configured: settings.configured, stateDir: settings.stateDir, ...status };
      app.report(json, () => {
        const fp = (value: string | null) => (value === null ? "none" : `sha256:${value}`);
        const token = status.token;
        const rows: [string, string][] = [
          ["module", status.module],
          [
            "token",
            token
              ? `slot ${token.slot}: "${token.tokenLabel}" (${token.tokenModel}, serial ${token.tokenSerial})`
              : options.offline
                ? `not checked (--offline), slot ${status.slot}`
                : `unavailable: ${status.tokenError?.message ?? "unknown error"}`,
          ],
          [
            "key",
            token
              ? `CKA_ID ${token.keyId || "(none)"}, label "${token.keyLabel}" (found by ${token.matchedBy === "id" ? "key_id" : "key_label"})`
              : `key_id ${status.keyId ?? "(unset)"}, key_label "${status.keyLabel ?? ""}"`,
          ],
          ["oaep_hash", status.oaepHash],
          ["PIN", status.pinSource === null ? "not resolved" : `from ${status.pinSource}`],
          ["token key", fp(status.tokenFingerprint)],
          ["pinned key", `${fp(status.pinnedFingerprint)} (${status.pinPath})`],
          ["public key", `${fp(status.cachedFingerprint)} (${status.publicKeyCachePath})`],
          ["pin status", status.pin],
          [
            "secrets",
            `${status.mappings.nitrokeyhsm} nitrokeyhsm mapping(s) of ${status.mappings.total} in ${settings.stateDir}`,
          ],
        ];
        return [...labelled(rows, 11), ...verdict.hints.map((hint) => `hint: ${hint}`)].join("\n");
      });
    });

  group
    .command("test-pin")
    .description(
      "resolve the HSM PIN (says from where, never prints it) and log in once; exit 0 or 1",
    )
    .action(async () => {
      const { provider, settings } = await hsmSettings(app);
      const result = await provider.testHsmPin({ ...settings, env: app.env });
      if (app.globals().json) {
        app.printJson(
          result.ok
            ? result
            : {
                ok: false,
                pinSource: result.pinSource,
                slot: result.slot,
                error: { code: result.error.code, message: result.error.message },
              },
        );
        if (!result.ok) app.exitCode = 1;
        return;
      }
      // One message on stderr, nothing on stdout.
      if (!result.ok) throw provider.testPinError(result);
      app.print(
        `PIN from ${result.pinSource}: login to ${result.tokenLabel === null ? "the token" : `token "${result.tokenLabel}"`} (slot ${result.slot}) works`,
      );
    });

  group
    .command("setup-pcscd")
    .description(
      "print (or write) what a container-mode host needs for pcscd: the pcscd_volume quadlet and a pcscd container, or (--mode host) the host pcscd's volume and polkit rule; " +
        "with --build-dir/--build-only also build the pcscd image (as the Python psi did)",
    )
    .addOption(
      new Option("--mode <mode>", "where pcscd runs")
        .choices(["container", "host"])
        .default("container"),
    )
    .option(
      "--image <image>",
      "image for the pcscd container (built from the rendered Containerfile)",
    )
    .option(
      "--write",
      "write the files (quadlets to systemd_dir, Containerfile to the config dir, polkit rule to /etc/polkit-1/rules.d)",
    )
    .option("--output-dir <dir>", "write every file into DIR instead (implies --write)")
    .option(
      "--build-dir <dir>",
      "write DIR/Containerfile and build the image from DIR (FROM scratch + DIR/rootfs.tar when scripts/pcscd-rootfs.sh made one; implies --write)",
    )
    .option(
      "--systemd-dir <dir>",
      "write the quadlets into DIR (default systemd_dir; implies --write)",
    )
    .option("--build-only", "build the image, write no quadlets")
    .action(async (options: PcscdOptions) => setupPcscd(app, options));
}

type PcscdOptions = Omit<PcscdSetupOptions, "loaded" | "env" | "uid">;

async function setupPcscd(app: App, options: PcscdOptions): Promise<void> {
  const build = options.buildDir !== undefined || options.buildOnly === true;
  if (options.mode === "host" && (build || options.systemdDir !== undefined)) {
    throw new UsageError(
      "--build-dir, --systemd-dir and --build-only build the pcscd container; --mode host uses the host's pcscd",
    );
  }
  const loaded = await app.optionalConfig();
  const { pcscdSetupJson, setupPcscd: run } = await import("@psi/ops");
  const result = await run({ ...options, loaded, env: app.env, uid: app.uid });
  const { files, builtFrom: built, daemonReload: reload, commands, notes } = result;
  app.output(pcscdSetupJson(result), () => {
    const out = files.flatMap((file) =>
      result.written ? [`wrote ${file.path}`] : [`# ---- ${file.path}`, file.text],
    );
    if (built)
      out.push(
        `built ${result.image} from ${built.dir}${built.fromRootfs ? " (FROM scratch + rootfs.tar)" : ""}`,
      );
    if (options.buildOnly) out.push("--build-only: no quadlets written");
    out.push(...reloadLines(reload), "", "then:", ...commands.map((command) => `  ${command}`));
    out.push("", "notes:", ...notes.map((note) => `  - ${note}`));
    return out.join("\n");
  });
}
