import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);
const EC_P256 = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"];

/** A private CA made by openssl: its certificate and key files. */
export interface TestCa {
  cert: string;
  key: string;
}

/** Creates a self-signed CA (EC P-256) in `dir` as `<name>.pem` and `<name>.key`. */
export async function createTestCa(
  dir: string,
  options: { name?: string; subject?: string; days?: number } = {},
): Promise<TestCa> {
  const name = options.name ?? "ca";
  const ca = { cert: join(dir, `${name}.pem`), key: join(dir, `${name}.key`) };
  await run("openssl", [
    "req",
    "-x509",
    ...EC_P256,
    "-nodes",
    "-keyout",
    ca.key,
    "-out",
    ca.cert,
    "-subj",
    options.subject ?? "/CN=Test CA",
    "-days",
    String(options.days ?? 2),
    "-addext",
    "basicConstraints=critical,CA:TRUE",
  ]);
  return ca;
}

/**
 * Issues a certificate signed by `ca` into `cert`/`key`: EC P-256 unless `newKey` gives
 * other `openssl req -newkey` arguments; `subjectAltName` as openssl writes it
 * (`IP:127.0.0.1,DNS:x`).
 */
export async function issueTestCertificate(options: {
  ca: TestCa;
  cert: string;
  key: string;
  subject: string;
  days?: number;
  subjectAltName?: string;
  newKey?: string[];
  /** Certify the key already in `key` instead of making a new one (a renewal for the same key). */
  keepKey?: boolean;
}): Promise<void> {
  await run("openssl", [
    "req",
    "-x509",
    ...(options.keepKey
      ? ["-key", options.key]
      : [...(options.newKey ?? EC_P256), "-nodes", "-keyout", options.key]),
    "-out",
    options.cert,
    "-subj",
    options.subject,
    "-days",
    String(options.days ?? 2),
    "-CA",
    options.ca.cert,
    "-CAkey",
    options.ca.key,
    ...(options.subjectAltName ? ["-addext", `subjectAltName=${options.subjectAltName}`] : []),
  ]);
}
