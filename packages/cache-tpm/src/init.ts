import { spawn } from "node:child_process";
import { randomBytes as nodeRandomBytes, randomUUID } from "node:crypto";
import { link, lstat, mkdir, open, rename, unlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import type { Env } from "@psi/core";
import { PsiError } from "@psi/core";
import type { RandomBytes } from "@psi/envelope";
import { defaultTpmKeyPath, TPM_CREDENTIAL_NAME, TPM_KEY_LENGTH } from "./backend.js";

/** Which keys systemd-creds seals with: the TPM, the host key, or both. */
export type TpmWithKey = "tpm2" | "host" | "tpm2+host";

/** The accepted values of `--with-key`. */
export const TPM_WITH_KEYS: readonly TpmWithKey[] = ["tpm2", "host", "tpm2+host"];

/** Options of {@link initTpmKey}. */
export interface InitTpmKeyOptions {
  /** Where the sealed key goes; default `<configDir>/cache.key`. */
  keyPath?: string;
  /** Needed when `keyPath` is not given. */
  configDir?: string;
  /** Default `tpm2`. */
  withKey?: TpmWithKey;
  /** TPM device node or TCTI (`swtpm:port=2321`); default: systemd-creds picks the TPM. */
  tpm2Device?: string;
  /** Replace an existing sealed key (the cache written with the old key becomes unreadable). */
  force?: boolean;
  /** The environment systemd-creds runs with (PATH, SYSTEMD_CREDENTIAL_SECRET, ...). */
  env: Env;
  /** The systemd-creds executable; default `systemd-creds` from `env.PATH`. */
  systemdCreds?: string;
  /** Key source; injectable for tests. */
  randomBytes?: RandomBytes;
  signal?: AbortSignal;
}

/** What {@link initTpmKey} made: the raw key (memory only) and where the sealed copy is. */
export interface InitTpmKeyResult {
  key: Uint8Array;
  keyPath: string;
  withKey: TpmWithKey;
}

interface SealResult {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

function runSeal(
  command: string,
  args: string[],
  input: Uint8Array,
  env: Env,
  signal?: AbortSignal,
): Promise<SealResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      env: { ...env } as NodeJS.ProcessEnv,
      stdio: ["pipe", "pipe", "pipe"],
      ...(signal === undefined ? {} : { signal }),
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (chunk: Buffer) => out.push(chunk));
    child.stderr.on("data", (chunk: Buffer) => err.push(chunk));
    child.on("error", reject);
    child.stdin.on("error", () => {
      // systemd-creds may exit before reading stdin (bad option); its exit code says why.
    });
    child.on("close", (code) =>
      resolve({
        code,
        stdout: Buffer.concat(out),
        stderr: Buffer.concat(err).toString("utf8").trim(),
      }),
    );
    child.stdin.end(Buffer.from(input));
  });
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw error;
  }
}

/**
 * Writes `data` to `path` (0600 from creation) through a dot-temp file in the same
 * directory, fsync, then rename (`force`) or link (no clobber: fails if `path` appeared
 * meanwhile), then fsyncs the directory. A failure leaves any existing file untouched.
 */
async function writeSealedKey(path: string, data: Uint8Array, force: boolean): Promise<void> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const temp = join(dir, `.${basename(path)}.${randomUUID()}.tmp`);
  const handle = await open(temp, "wx", 0o600);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    if (force) {
      await rename(temp, path);
    } else {
      await link(temp, path);
      await unlink(temp);
    }
  } catch (error) {
    await unlink(temp).catch(() => {});
    if ((error as NodeJS.ErrnoException).code === "EEXIST") throw keyExists(path);
    throw error;
  }
  const dirHandle = await open(dir, "r");
  try {
    await dirHandle.sync();
  } finally {
    await dirHandle.close();
  }
}

function keyExists(path: string): PsiError {
  return new PsiError("cache.key_exists", `a sealed cache key already exists at ${path}`, {
    hint:
      "keep it (the cache and every host unit use it), or pass --force to replace it; " +
      "the cache written with the old key is then rewritten empty",
  });
}

function sealFailedHint(withKey: TpmWithKey, stderr: string, device: string | undefined): string {
  if (withKey !== "host" && /tpm|tcti/i.test(stderr)) {
    return (
      `no usable TPM2${device === undefined ? "" : ` at ${device}`}: check \`systemd-creds has-tpm2\`, ` +
      "pass --tpm2-device, or seal with the host key (--with-key host) on hosts without a TPM"
    );
  }
  if (/credential.secret|host key/i.test(stderr)) {
    return "the host key could not be used: run `systemd-creds setup` once as root";
  }
  return "run the same systemd-creds command by hand to see what it needs";
}

/**
 * Provisions the tpm backend's key (SPEC §7): 32 random bytes piped on stdin to
 * `systemd-creds encrypt --name=psi-cache-key --with-key=K [--tpm2-device=D] --tpm2-pcrs=7 - -`;
 * the sealed credential comes back on stdout and is written to `keyPath` (0600, atomic,
 * never clobbering without `force`). The plaintext key is never on a command line nor on
 * disk; it is returned so the caller can write an empty cache with it.
 */
export async function initTpmKey(options: InitTpmKeyOptions): Promise<InitTpmKeyResult> {
  if (options.keyPath === undefined && options.configDir === undefined) {
    throw new PsiError("cache.tpm_init", "initTpmKey needs keyPath or configDir");
  }
  const keyPath = options.keyPath ?? defaultTpmKeyPath(options.configDir ?? "");
  const withKey = options.withKey ?? "tpm2";
  if (!TPM_WITH_KEYS.includes(withKey)) {
    throw new PsiError("cache.tpm_init", `unknown --with-key "${String(withKey)}"`, {
      hint: `use one of ${TPM_WITH_KEYS.join(", ")}`,
    });
  }
  const force = options.force === true;
  if (!force && (await exists(keyPath))) throw keyExists(keyPath);

  const key = Buffer.from((options.randomBytes ?? nodeRandomBytes)(TPM_KEY_LENGTH));
  if (key.length !== TPM_KEY_LENGTH) {
    throw new RangeError(
      `random source returned ${key.length} bytes for a ${TPM_KEY_LENGTH}-byte key`,
    );
  }
  const command = options.systemdCreds ?? "systemd-creds";
  const args = [
    "encrypt",
    `--name=${TPM_CREDENTIAL_NAME}`,
    `--with-key=${withKey}`,
    ...(options.tpm2Device === undefined ? [] : [`--tpm2-device=${options.tpm2Device}`]),
    ...(withKey === "host" ? [] : ["--tpm2-pcrs=7"]),
    "-",
    "-",
  ];
  let result: SealResult;
  try {
    result = await runSeal(command, args, key, options.env, options.signal);
  } catch (error) {
    key.fill(0);
    if ((error as NodeJS.ErrnoException).code === "ENOENT") {
      throw new PsiError("cache.tpm_tool_missing", `${command} was not found`, {
        cause: error,
        hint:
          "install systemd >= 250 (it provides systemd-creds), " +
          "or use `psi cache init --backend keyfile` on hosts without it",
      });
    }
    throw new PsiError(
      "cache.tpm_seal_failed",
      `could not run ${command}: ${(error as Error).message}`,
      { cause: error },
    );
  }
  if (result.code !== 0 || result.stdout.length === 0) {
    key.fill(0);
    throw new PsiError(
      "cache.tpm_seal_failed",
      `systemd-creds encrypt failed (exit ${result.code ?? "signal"}): ${result.stderr || "no output"}`,
      { hint: sealFailedHint(withKey, result.stderr, options.tpm2Device) },
    );
  }
  try {
    await writeSealedKey(keyPath, result.stdout, force);
  } catch (error) {
    key.fill(0);
    throw error;
  }
  return { key, keyPath, withKey };
}
