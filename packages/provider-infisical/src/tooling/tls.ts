import { spawn } from "node:child_process";
import { createPrivateKey, X509Certificate } from "node:crypto";
import { readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import {
  type CertificateConfig,
  durationSeconds,
  type Env,
  ensureDir,
  errorMessage,
  isPsiError,
  type Logger,
  PsiError,
  writeFileAtomic,
} from "@psi/core";
import * as v from "valibot";
import type { InfisicalClient } from "../client.js";
import { infisicalErrorStatus } from "../errors.js";
import type { IssuedCertificate } from "../schemas.js";
import { splitCommandLine } from "./words.js";

const DAY_MS = 86_400_000;
const NAME = /^[A-Za-z0-9_.@:-]+$/;

/** What PSI remembers per certificate: `<state_dir>/.tls.<name>.json` (0600). */
export const TlsStateSchema = v.object({
  certificate_id: v.string(),
  serial_number: v.string(),
  /** ISO 8601. */
  not_after: v.string(),
  issued_at: v.string(),
  common_name: v.string(),
  profile_id: v.string(),
});

/** The state of one certificate. */
export type TlsState = v.InferOutput<typeof TlsStateSchema>;

/** The state file of certificate `name` (a dot name: never listed as a secret, SPEC §3). */
export function tlsStateFileName(name: string): string {
  return `.tls.${name}.json`;
}

/** A certificate request waiting for approval in Infisical: `<state_dir>/.tls.<name>.pending.json`. */
const PendingSchema = v.object({
  request_id: v.string(),
  requested_at: v.string(),
  common_name: v.string(),
  profile_id: v.string(),
});

/** Request states in which Infisical may still issue (the request API's status enum). */
const WAITING = new Set(["pending_approval", "pending", "pending_validation"]);

/** Runs one hook; rejects when it cannot start, fails or times out. */
export type HookRunner = (
  argv: string[],
  options: { env: Env; timeoutMs: number },
) => Promise<void>;

/** Options of {@link createTlsManager}. */
export interface TlsManagerOptions {
  client: InfisicalClient;
  /** `providers.infisical.tls.certificates`. */
  certificates: Readonly<Record<string, CertificateConfig>>;
  stateDir: string;
  /** Environment of the hooks (plus PSI_TLS_* variables naming the certificate and its files). */
  env?: Env;
  logger?: Logger;
  /** Clock in milliseconds: expiry and the renew window. */
  now?: () => number;
  /** Replaces how hooks run (the default spawns argv[0] without a shell). */
  runHook?: HookRunner;
  /** Per hook (default 120 s). */
  hookTimeoutMs?: number;
  signal?: AbortSignal;
}

/** A hook that ran (or was not run because an earlier one failed). */
export interface HookResult {
  command: string;
  ok: boolean;
  error?: string;
}

/** The outcome of issuing or renewing one certificate. */
export interface TlsResult {
  name: string;
  /** `pending`: the request waits for approval in Infisical; `renew` picks it up once issued. */
  action: "issued" | "renewed" | "skipped" | "pending" | "failed";
  /** The Infisical certificate request waiting for approval (action `pending`). */
  requestId?: string;
  /** Why it was skipped, or what failed. */
  reason?: string;
  certificateId?: string;
  serialNumber?: string;
  notAfter?: string;
  daysLeft?: number;
  files?: string[];
  hooks: HookResult[];
  error?: { code: string; message: string; hint?: string };
}

/**
 * Whether an issue or renew run deployed what it was asked to: no certificate failed, and
 * none waits for approval (a pending request deployed nothing; scripts must not go on).
 */
export function tlsRunOk(results: readonly TlsResult[]): boolean {
  return results.every((result) => result.action !== "failed" && result.action !== "pending");
}

/** What `tls status` reports per certificate. */
export interface TlsStatus {
  name: string;
  commonName: string;
  certFile: string;
  /** False when the certificate file does not exist yet. */
  present: boolean;
  notAfter?: string;
  daysLeft?: number;
  serialNumber?: string;
  certificateId?: string;
  renewBefore: string;
  /** True when `tls renew` would renew it now. */
  renewDue: boolean;
  /** The certificate file exists but cannot be read or parsed. */
  error?: string;
}

const defaultRunHook: HookRunner = (argv, options) =>
  new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), {
      env: { ...options.env },
      stdio: ["ignore", "ignore", "pipe"],
      timeout: options.timeoutMs,
    });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => {
      if (stderr.length < 2000) stderr += chunk.toString("utf8");
    });
    child.on("error", (error) => reject(new Error(`cannot run ${argv[0]}: ${error.message}`)));
    child.on("close", (code, signal) => {
      if (code === 0) return resolve();
      const tail = stderr.trim().split("\n").slice(-3).join(" | ").slice(0, 300);
      const how = signal ? `was killed by ${signal}` : `exited with status ${code}`;
      reject(new Error(`${argv[0]} ${how}${tail ? `: ${tail}` : ""}`));
    });
  });

function toErrorInfo(error: unknown): { code: string; message: string; hint?: string } {
  if (isPsiError(error)) {
    return {
      code: error.code,
      message: error.message,
      ...(error.hint ? { hint: error.hint } : {}),
    };
  }
  return { code: "tls.error", message: errorMessage(error) };
}

/** The expiry of a PEM certificate (the first one in `pem`). */
export function certificateNotAfter(pem: string): Date {
  const certificate = new X509Certificate(pem);
  const withDate = certificate as X509Certificate & { validToDate?: Date };
  return withDate.validToDate ?? new Date(certificate.validTo);
}

/**
 * `psi infisical tls issue|renew|status` (SPEC §12) over `providers.infisical.tls.certificates`:
 * issue asks Infisical for a new certificate from the profile; renew renews the recorded
 * one only within `renew_before` of its expiry (read from the certificate file) or when
 * forced, and issues one when none was issued yet. Files are replaced atomically (the key
 * with at most 0600, the others with `output.mode`, the certificate last), the state is
 * kept in `<state_dir>/.tls.<name>.json`, then the hooks run in order, without a shell.
 * One certificate failing never stops the others.
 */
export function createTlsManager(options: TlsManagerOptions) {
  const now = options.now ?? Date.now;
  const runHook = options.runHook ?? defaultRunHook;
  const hookTimeoutMs = options.hookTimeoutMs ?? 120_000;
  const logger = options.logger;
  const call = { purpose: "setup" as const, signal: options.signal };

  function selected(names: readonly string[] | undefined): Array<[string, CertificateConfig]> {
    const all = Object.entries(options.certificates);
    if (!names || names.length === 0) return all;
    const unknown = names.filter((name) => !Object.hasOwn(options.certificates, name));
    if (unknown.length > 0) {
      throw new PsiError(
        "tls.unknown_certificate",
        `no certificate named ${unknown.join(", ")} in providers.infisical.tls.certificates`,
        {
          hint: all.length
            ? `configured: ${all.map(([name]) => name).join(", ")}`
            : "add one under providers.infisical.tls.certificates",
        },
      );
    }
    return names.map((name) => [name, options.certificates[name]!]);
  }

  function statePath(name: string): string {
    if (!NAME.test(name)) {
      throw new PsiError(
        "tls.bad_name",
        `certificate name ${JSON.stringify(name)} cannot name a state file`,
        { hint: "use letters, digits, '_', '.', '@', ':' and '-' in certificate names" },
      );
    }
    return join(options.stateDir, tlsStateFileName(name));
  }

  function pendingPath(name: string): string {
    return statePath(name).replace(/\.json$/, ".pending.json");
  }

  /** The deployed key when `issued` certifies it; undefined when there is none or it differs. */
  async function keptKey(
    config: CertificateConfig,
    issued: IssuedCertificate,
  ): Promise<string | undefined> {
    let pem: string;
    try {
      pem = await readFile(config.output.key, "utf8");
    } catch {
      return undefined;
    }
    try {
      return new X509Certificate(issued.certificate).checkPrivateKey(createPrivateKey(pem))
        ? pem
        : undefined;
    } catch {
      return undefined;
    }
  }

  async function readPending(name: string) {
    let text: string;
    try {
      text = await readFile(pendingPath(name), "utf8");
    } catch {
      return undefined;
    }
    const parsed = v.safeParse(PendingSchema, JSON.parse(text) as unknown);
    return parsed.success ? parsed.output : undefined;
  }

  /** Records a request waiting for approval and reports it. */
  async function pending(
    name: string,
    config: CertificateConfig,
    requestId: string,
    status: string,
  ): Promise<TlsResult> {
    await ensureDir(options.stateDir, 0o700);
    const record = {
      request_id: requestId,
      requested_at: new Date(now()).toISOString(),
      common_name: config.common_name,
      profile_id: config.profile_id,
    };
    const previous = await readPending(name);
    if (previous?.request_id !== requestId)
      await writeFileAtomic(pendingPath(name), `${JSON.stringify(record)}\n`, { mode: 0o600 });
    const reason = `request ${requestId} is ${status} in Infisical; approve it there, then \`psi infisical tls renew ${name}\` deploys it`;
    logger?.warn(`certificate ${name}: ${reason}`, {
      event: "tls.pending",
      certificate: name,
      request: requestId,
    });
    return { name, action: "pending", requestId, reason, hooks: [] };
  }

  /** Issues now, or records the request when it waits for approval. */
  async function issueOrWait(
    name: string,
    config: CertificateConfig,
    hooks: string[][],
  ): Promise<TlsResult> {
    const answer = await requestOne(config);
    if ("certificate" in answer) return deploy(name, config, answer.certificate, hooks, "issued");
    return pending(name, config, answer.requestId, answer.status);
  }

  async function readState(name: string): Promise<TlsState | undefined> {
    const file = statePath(name);
    let text: string;
    try {
      text = await readFile(file, "utf8");
    } catch {
      return undefined;
    }
    try {
      const parsed = v.safeParse(TlsStateSchema, JSON.parse(text));
      if (parsed.success) return parsed.output;
    } catch {
      // fall through: an unreadable state file is as good as none
    }
    logger?.warn(`ignoring the unreadable TLS state file of ${name}`, {
      event: "tls.state",
      certificate: name,
    });
    return undefined;
  }

  /** notAfter of the certificate file on disk; undefined when it is missing. */
  async function deployedNotAfter(config: CertificateConfig): Promise<Date | undefined> {
    let pem: string;
    try {
      pem = await readFile(config.output.cert, "utf8");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw new PsiError(
        "tls.unreadable",
        `cannot read ${config.output.cert}: ${errorMessage(error)}`,
        {
          cause: error,
        },
      );
    }
    try {
      return certificateNotAfter(pem);
    } catch (error) {
      throw new PsiError("tls.unreadable", `${config.output.cert} holds no valid PEM certificate`, {
        cause: error,
        hint: "run psi infisical tls issue to replace it",
      });
    }
  }

  function hooksOf(name: string, config: CertificateConfig): string[][] {
    return config.hooks.map((hook, index) => {
      const argv = splitCommandLine(hook);
      if (Array.isArray(argv)) return argv;
      throw new PsiError(
        "tls.bad_hook",
        `hook ${index + 1} of certificate ${name} cannot be split into a command: ${argv.problem}`,
        { hint: `fix providers.infisical.tls.certificates.${name}.hooks[${index}]` },
      );
    });
  }

  function renewWindowMs(name: string, config: CertificateConfig): number {
    const seconds = durationSeconds(config.renew_before);
    if (seconds === undefined) {
      throw new PsiError("tls.bad_config", `renew_before of certificate ${name} is not a duration`);
    }
    return seconds * 1000;
  }

  /** Writes the files and the state, then runs the hooks. */
  async function deploy(
    name: string,
    config: CertificateConfig,
    issued: IssuedCertificate,
    hooks: string[][],
    action: "issued" | "renewed",
  ): Promise<TlsResult> {
    let privateKey = issued.privateKey;
    if (!privateKey && action === "renewed") {
      // A renewal may keep the key (Infisical then sends none): use the deployed key, but
      // only if the new certificate is really for it.
      privateKey = await keptKey(config, issued);
    }
    if (!privateKey) {
      throw new PsiError(
        "tls.no_private_key",
        `Infisical returned certificate ${issued.certificateId} without its private key`,
        { hint: "use a certificate profile that generates the key in Infisical" },
      );
    }
    let notAfter: Date;
    try {
      notAfter = certificateNotAfter(issued.certificate);
    } catch (error) {
      throw new PsiError(
        "provider.bad_response",
        `Infisical returned certificate ${issued.certificateId} with an unreadable PEM`,
        { cause: error },
      );
    }
    const mode = Number.parseInt(config.output.mode, 8);
    // The private key is never wider than 0600; a stricter configured mode applies.
    const keyMode = mode & 0o600;
    const files: Array<[string, string, number]> = [
      [config.output.key, privateKey, keyMode],
      [config.output.chain, issued.certificateChain, mode],
    ];
    if (config.output.ca) files.push([config.output.ca, issued.issuingCaCertificate, mode]);
    // The certificate goes last: its expiry is what decides the next renewal.
    files.push([config.output.cert, issued.certificate, mode]);
    for (const [path, text, fileMode] of files) {
      await writeFileAtomic(path, ensureNewline(text), { mode: fileMode });
    }
    await ensureDir(options.stateDir, 0o700);
    const state: TlsState = {
      certificate_id: issued.certificateId,
      serial_number: issued.serialNumber,
      not_after: notAfter.toISOString(),
      issued_at: new Date(now()).toISOString(),
      common_name: config.common_name,
      profile_id: config.profile_id,
    };
    await writeFileAtomic(statePath(name), `${JSON.stringify(state)}\n`, { mode: 0o600 });
    await rm(pendingPath(name), { force: true });
    logger?.info(`${action} certificate ${name} (serial ${issued.serialNumber})`, {
      event: "tls.deployed",
      certificate: name,
      action,
      serial: issued.serialNumber,
      not_after: state.not_after,
    });
    const result: TlsResult = {
      name,
      action,
      certificateId: issued.certificateId,
      serialNumber: issued.serialNumber,
      notAfter: state.not_after,
      daysLeft: Math.floor((notAfter.getTime() - now()) / DAY_MS),
      files: files.map(([path]) => path),
      hooks: [],
    };
    const env: Env = {
      ...options.env,
      PSI_TLS_CERTIFICATE: name,
      PSI_TLS_CERT_FILE: config.output.cert,
      PSI_TLS_KEY_FILE: config.output.key,
      PSI_TLS_CHAIN_FILE: config.output.chain,
      ...(config.output.ca ? { PSI_TLS_CA_FILE: config.output.ca } : {}),
    };
    for (const [index, argv] of hooks.entries()) {
      const command = config.hooks[index]!;
      try {
        await runHook(argv, { env, timeoutMs: hookTimeoutMs });
        result.hooks.push({ command, ok: true });
      } catch (error) {
        const message = errorMessage(error);
        result.hooks.push({ command, ok: false, error: message });
        result.action = "failed";
        result.reason = `the files were written, but hook ${index + 1} failed`;
        result.error = {
          code: "tls.hook_failed",
          message: `certificate ${name}: hook "${command}" failed: ${message}`,
          hint: "the new files are in place; fix the hook and run it by hand (later hooks did not run)",
        };
        logger?.error(result.error.message, { event: "tls.hook", certificate: name });
        for (const skipped of config.hooks.slice(index + 1)) {
          result.hooks.push({
            command: skipped,
            ok: false,
            error: "not run: an earlier hook failed",
          });
        }
        break;
      }
    }
    return result;
  }

  async function requestOne(config: CertificateConfig) {
    return options.client.requestCertificate(
      {
        project: config.project,
        profileId: config.profile_id,
        commonName: config.common_name,
        altNames: config.alt_names,
        ttl: config.ttl,
        ...(config.key_algorithm ? { keyAlgorithm: config.key_algorithm } : {}),
      },
      call,
    );
  }

  async function guarded(name: string, work: () => Promise<TlsResult>): Promise<TlsResult> {
    try {
      return await work();
    } catch (error) {
      const info = toErrorInfo(error);
      logger?.error(`certificate ${name}: ${info.message}`, {
        event: "tls.failed",
        certificate: name,
        code: info.code,
      });
      return { name, action: "failed", reason: info.message, hooks: [], error: info };
    }
  }

  return {
    /** Issues a new certificate for each selected one (all when `names` is empty). */
    async issue(names?: readonly string[]): Promise<TlsResult[]> {
      const results: TlsResult[] = [];
      for (const [name, config] of selected(names)) {
        results.push(
          await guarded(name, async () => {
            statePath(name);
            return issueOrWait(name, config, hooksOf(name, config));
          }),
        );
      }
      return results;
    },

    /**
     * Renews each selected certificate that expires within `renew_before` (or every one with
     * `force`); one never issued (no state) or with no file on disk is issued.
     */
    async renew(names?: readonly string[], renewOptions: { force?: boolean } = {}) {
      const results: TlsResult[] = [];
      for (const [name, config] of selected(names)) {
        results.push(
          await guarded(name, async () => {
            const hooks = hooksOf(name, config);
            const window = renewWindowMs(name, config);
            // A request that waited for approval: deploy it once issued, keep waiting while
            // Infisical says so, request again when it was rejected or failed.
            const waiting = await readPending(name);
            if (waiting) {
              const request = await options.client.certificateRequest(
                { project: config.project, requestId: waiting.request_id },
                call,
              );
              if (request.certificate)
                return deploy(name, config, request.certificate, hooks, "issued");
              if (WAITING.has(request.status))
                return pending(name, config, waiting.request_id, request.status);
              logger?.warn(
                `certificate ${name}: request ${waiting.request_id} is ${request.status}${request.error ? ` (${request.error})` : ""}; requesting again`,
                { event: "tls.pending", certificate: name, request: waiting.request_id },
              );
              await rm(pendingPath(name), { force: true });
              return issueOrWait(name, config, hooks);
            }
            const state = await readState(name);
            let notAfter: Date | undefined;
            try {
              notAfter = await deployedNotAfter(config);
            } catch (error) {
              logger?.warn(`${errorMessage(error)}; renewing`, {
                event: "tls.unreadable",
                certificate: name,
              });
            }
            if (!renewOptions.force && notAfter !== undefined) {
              const left = notAfter.getTime() - now();
              if (left > window) {
                return {
                  name,
                  action: "skipped",
                  reason: `not due: expires ${notAfter.toISOString()}, renewal starts ${config.renew_before} before`,
                  notAfter: notAfter.toISOString(),
                  daysLeft: Math.floor(left / DAY_MS),
                  ...(state ? { certificateId: state.certificate_id } : {}),
                  hooks: [],
                };
              }
            }
            if (!state) return issueOrWait(name, config, hooks);
            let renewed: IssuedCertificate;
            try {
              renewed = await options.client.renewCertificate(
                { project: config.project, certificateId: state.certificate_id },
                call,
              );
            } catch (error) {
              if (infisicalErrorStatus(error) !== 404) throw error;
              logger?.warn(
                `Infisical no longer knows certificate ${state.certificate_id} of ${name}; issuing a new one`,
                { event: "tls.renew", certificate: name },
              );
              return issueOrWait(name, config, hooks);
            }
            return deploy(name, config, renewed, hooks, "renewed");
          }),
        );
      }
      return results;
    },

    /** Expiry, days left and whether a renewal is due, per certificate; reads files only. */
    async status(names?: readonly string[]): Promise<TlsStatus[]> {
      const statuses: TlsStatus[] = [];
      for (const [name, config] of selected(names)) {
        const base = {
          name,
          commonName: config.common_name,
          certFile: config.output.cert,
          renewBefore: config.renew_before,
        };
        let state: TlsState | undefined;
        try {
          state = await readState(name);
        } catch (error) {
          statuses.push({ ...base, present: false, renewDue: true, error: errorMessage(error) });
          continue;
        }
        const ids = state ? { certificateId: state.certificate_id } : {};
        let pem: string;
        try {
          pem = await readFile(config.output.cert, "utf8");
        } catch (error) {
          const missing = (error as NodeJS.ErrnoException).code === "ENOENT";
          statuses.push({
            ...base,
            ...ids,
            present: !missing,
            renewDue: true,
            ...(missing
              ? {}
              : { error: `cannot read ${config.output.cert}: ${errorMessage(error)}` }),
          });
          continue;
        }
        try {
          const certificate = new X509Certificate(pem);
          const notAfter = certificateNotAfter(pem);
          const left = notAfter.getTime() - now();
          statuses.push({
            ...base,
            ...ids,
            present: true,
            notAfter: notAfter.toISOString(),
            daysLeft: Math.floor(left / DAY_MS),
            serialNumber: certificate.serialNumber.toLowerCase(),
            renewDue: left <= renewWindowMs(name, config),
          });
        } catch (error) {
          statuses.push({
            ...base,
            ...ids,
            present: true,
            renewDue: true,
            error: isPsiError(error)
              ? error.message
              : `${config.output.cert} holds no valid PEM certificate`,
          });
        }
      }
      return statuses;
    },
  };
}

/** The manager {@link createTlsManager} returns. */
export type TlsManager = ReturnType<typeof createTlsManager>;

function ensureNewline(text: string): string {
  return text.endsWith("\n") ? text : `${text}\n`;
}
