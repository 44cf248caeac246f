import { realpathSync, statSync } from "node:fs";
import { dirname } from "node:path";
import { errorMessage, PsiError } from "@psi/core";

/** Options of {@link checkPrivateDir}. */
export interface PrivateDirOptions {
  /** The user serve runs as: the directory must be theirs or root's. */
  uid: number;
  /** What the directory is, for the message ("socket directory", "state_dir"). */
  what: string;
  /** The configuration setting that accepts such a directory anyway, named in the hint. */
  override?: string;
}

const GROUP_OTHER_WRITE = 0o022;
const STICKY = 0o1000;

/**
 * Refuses a directory that someone else could change, as OpenSSH's StrictModes does:
 * `path` and every directory above it must be owned by `uid` or root and not writable by
 * group or others. An ancestor with the sticky bit (`/tmp`) is fine: others cannot
 * rename or remove what is ours in it. Whoever can write the socket directory can replace
 * the socket and receive the bearer token; whoever can write `state_dir` chooses the
 * mappings. Throws `serve.insecure_dir` with the chmod/chown that fixes it.
 */
export async function checkPrivateDir(path: string, options: PrivateDirOptions): Promise<void> {
  let dir: string;
  try {
    // a few stat calls before serve listens: without the thread pool
    dir = realpathSync(path);
  } catch (error) {
    throw new PsiError(
      "serve.insecure_dir",
      `cannot check the ${options.what} ${path}: ${errorMessage(error)}`,
      { cause: error, hint: `create it as the user psi serve runs as: mkdir -m 700 -p ${path}` },
    );
  }
  for (let current = dir, first = true; ; first = false) {
    const info = statSync(current);
    const mode = info.mode & 0o7777;
    const owner = info.uid;
    const foreign = owner !== options.uid && owner !== 0;
    const writable = (mode & GROUP_OTHER_WRITE) !== 0 && (first || (mode & STICKY) === 0);
    if (foreign || writable) {
      const where =
        current === dir
          ? `${options.what} ${dir}`
          : `directory ${current} (above the ${options.what} ${dir})`;
      const by = [mode & 0o020 ? "group" : "", mode & 0o002 ? "others" : ""].filter(Boolean);
      const problem = foreign
        ? `is owned by uid ${owner}, not by uid ${options.uid} (who runs psi serve) or root`
        : `is writable by ${by.join(" and ")} (mode ${mode.toString(8).padStart(4, "0")})`;
      const fix = foreign
        ? `chown ${options.uid} ${current} && chmod go-w ${current}`
        : `chmod go-w ${current}`;
      throw new PsiError(
        "serve.insecure_dir",
        `refusing to serve: the ${where} ${problem}; another user could replace the socket or the files in it`,
        {
          hint:
            `${fix}` +
            (options.override ? ` (or, if this is intended, set ${options.override}: true)` : ""),
        },
      );
    }
    const parent = dirname(current);
    if (parent === current) return;
    current = parent;
  }
}
