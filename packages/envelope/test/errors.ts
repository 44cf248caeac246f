import { EnvelopeError } from "../src/index.js";

/** The EnvelopeError `promise` rejects with; fails the test on success or another error. */
export async function rejection(promise: Promise<unknown>): Promise<EnvelopeError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (error instanceof EnvelopeError) return error;
  throw new Error(`expected an EnvelopeError, got ${String(error)}`);
}

/** The EnvelopeError `fn` throws; fails the test on success or another error. */
export function thrown(fn: () => unknown): EnvelopeError {
  try {
    fn();
  } catch (error) {
    if (error instanceof EnvelopeError) return error;
    throw error;
  }
  throw new Error("expected an EnvelopeError");
}
