import { resolve } from "node:path";
import { isPsiError, type PsiError } from "@psi/core";

export { type LogLine, recordingLogger } from "@psi/testkit/logger";

/** The shared vectors (hsm-private-key.pem, nitrokeyhsm-mapping.json, manifest.json). */
export const VECTORS = resolve(import.meta.dirname, "../../../vectors");

/** The PsiError a promise rejects with (fails the test on anything else). */
export async function rejection(promise: Promise<unknown>): Promise<PsiError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (isPsiError(error)) return error;
  throw new Error(`expected a PsiError, got ${String(error)}`);
}
