import { fstatSync } from "node:fs";
import { PsiError } from "./errors.js";
import type { Env } from "./paths.js";

// What every frontend (the CLI, a Cockpit plugin, a deployment script) reads from its
// process the same way: the journal stream, boolean environment flags, stdin secrets, and
// the key style of machine output.

/**
 * True when `stream` is the journal stream systemd connected (`JOURNAL_STREAM` is
 * `device:inode` of it, as systemd.exec(5) says to check), so log lines carry a priority.
 */
export function stderrIsJournal(env: Env, stream: object): boolean {
  const journal = env["JOURNAL_STREAM"];
  if (!journal) return false;
  const fd = (stream as { fd?: unknown }).fd;
  if (typeof fd !== "number") return true;
  try {
    const stat = fstatSync(fd, { bigint: true });
    return journal === `${stat.dev}:${stat.ino}`;
  } catch {
    return false;
  }
}

/** The boolean an environment variable holds, read as the reference's CLI (click) reads it. */
export function envFlag(value: string | undefined): boolean | undefined {
  if (value === undefined || value.trim() === "") return undefined;
  const text = value.trim().toLowerCase();
  if (["1", "true", "t", "yes", "y", "on"].includes(text)) return true;
  if (["0", "false", "f", "no", "n", "off"].includes(text)) return false;
  return undefined;
}

/** `staleOpts` → `stale_opts`: machine output uses the log lines' key style. */
export function snakeCaseKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(snakeCaseKeys);
  if (value === null || typeof value !== "object" || value instanceof Date) return value;
  return Object.fromEntries(
    Object.entries(value).map(([key, item]) => [
      key.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toLowerCase(),
      snakeCaseKeys(item),
    ]),
  );
}

/** All of a stream as bytes; the chunk copies are zeroed (it may be a secret). */
export async function readAll(stream: AsyncIterable<unknown>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) {
    chunks.push(typeof chunk === "string" ? Buffer.from(chunk) : Buffer.from(chunk as Uint8Array));
  }
  const data = Buffer.concat(chunks);
  for (const chunk of chunks) chunk.fill(0);
  return data;
}

/**
 * A secret value from stdin (`psi local store`, `psi nitrokeyhsm store`); refuses a
 * terminal (the value would echo) and an empty input. `what` is the command after `psi`,
 * used in the hints.
 */
export async function readSecretInput(
  stdin: AsyncIterable<unknown> & { isTTY?: boolean },
  what: string,
): Promise<Buffer> {
  if (stdin.isTTY) {
    throw new PsiError("input.tty", `${what} reads the value from stdin, which is a terminal`, {
      hint: `pipe the value in, e.g. printf %s "$VALUE" | psi ${what}`,
    });
  }
  const data = await readAll(stdin);
  if (data.length === 0) {
    throw new PsiError("input.empty", `${what}: stdin is empty, there is nothing to seal`, {
      hint: `pipe the value in, e.g. printf %s "$VALUE" | psi ${what} (printf %s adds no newline)`,
    });
  }
  return data;
}
