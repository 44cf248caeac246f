import { EnvelopeError } from "./errors.js";

/** The four bytes every PSI cache file starts with. */
export const MAGIC = "PSIC";
/** The envelope version this package reads and writes (SPEC §6.1). */
export const ENVELOPE_VERSION = 0x01;
/** Bytes before the payload: magic (4), version (1), backend tag (1). */
export const HEADER_LENGTH = 6;
/** Backend tag of the TPM (systemd-creds) cache backend. */
export const TAG_TPM = 0x01;
/** Backend tag of the HSM (RSA-OAEP wrapped key) cache backend. */
export const TAG_HSM = 0x02;
/** Backend tag of the key-file cache backend. */
export const TAG_KEYFILE = 0x03;

/** The backend tags by name, for messages and configuration. */
export const BACKEND_TAGS = { tpm: TAG_TPM, hsm: TAG_HSM, keyfile: TAG_KEYFILE } as const;

/** A backend name as configured in `cache.backend`. */
export type BackendName = keyof typeof BACKEND_TAGS;

const MAGIC_BYTES = Buffer.from(MAGIC, "latin1");

/** Formats a tag byte as `0x01`. */
export function formatTag(tag: number): string {
  return `0x${tag.toString(16).padStart(2, "0")}`;
}

/** The backend name of a tag (`tpm`, `hsm`, `keyfile`), or undefined for an unknown tag. */
export function backendName(tag: number): BackendName | undefined {
  for (const [name, value] of Object.entries(BACKEND_TAGS)) {
    if (value === tag) return name as BackendName;
  }
  return undefined;
}

/** Options naming the file in error messages. */
export interface ReadOptions {
  path?: string;
}

/** Reads the 6-byte header without a key (how `psi cache status` stays fast). Throws EnvelopeError. */
export function readHeader(
  file: Uint8Array,
  options: ReadOptions = {},
): { version: number; tag: number } {
  const where = options.path ?? "cache file";
  const path = options.path === undefined ? {} : { path: options.path };
  if (file.length < HEADER_LENGTH) {
    throw new EnvelopeError(
      "too_short",
      `${where} is too short for a PSIC header (${file.length} bytes, need ${HEADER_LENGTH})`,
      {
        ...path,
        hint: "the file was cut off or is not a PSI cache; re-run `psi setup` to rewrite it",
      },
    );
  }
  for (let i = 0; i < MAGIC_BYTES.length; i++) {
    if (file[i] !== MAGIC_BYTES[i]) {
      const found = Buffer.from(file.subarray(0, MAGIC_BYTES.length)).toString("hex");
      throw new EnvelopeError(
        "bad_magic",
        `${where} is not a PSI cache file (starts with 0x${found}, expected "${MAGIC}")`,
        { ...path, hint: "check cache.path; re-run `psi setup` to rewrite the cache" },
      );
    }
  }
  const version = file[4] as number;
  const tag = file[5] as number;
  if (version !== ENVELOPE_VERSION) {
    throw new EnvelopeError(
      "unsupported_version",
      `${where} has envelope version ${formatTag(version)}; this PSI reads version ${formatTag(ENVELOPE_VERSION)}`,
      {
        ...path,
        hint: "the file was written by another PSI release; upgrade PSI or re-run `psi setup` to rewrite it",
      },
    );
  }
  return { version, tag };
}

/** The header for `tag`, followed by `payload` when given. */
export function writeHeader(tag: number, payload: Uint8Array = new Uint8Array(0)): Uint8Array {
  if (!Number.isInteger(tag) || tag < 0 || tag > 0xff) {
    throw new RangeError(`backend tag must be a byte, got ${tag}`);
  }
  const out = Buffer.allocUnsafe(HEADER_LENGTH + payload.length);
  MAGIC_BYTES.copy(out, 0);
  out[4] = ENVELOPE_VERSION;
  out[5] = tag;
  out.set(payload, HEADER_LENGTH);
  return out;
}
