import { readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { ensureDir, writeFileAtomic } from "@psi/core";
import { renderSecretsDropIn, secretsDropInPath } from "@psi/unitgen";

/** Where a workload's drop-in lives: `<systemd_dir>/<workload>.container.d/50-secrets.conf`. */
export function dropInPath(systemdDir: string, workload: string): string {
  return join(systemdDir, secretsDropInPath(workload));
}

/** What {@link writeDropIn} did. */
export interface DropInWrite {
  path: string;
  /** False when the file already had exactly this text (left alone, mtime kept). */
  written: boolean;
}

/**
 * Writes a workload's drop-in (SPEC §9) atomically, unless it already holds exactly this
 * text: quadlet regenerates units from these files, so an unchanged file is not touched.
 * Mode 0644 like any unit file: it names secrets, never values.
 */
export async function writeDropIn(options: {
  systemdDir: string;
  workload: string;
  keys: Iterable<string>;
  dependsOn?: readonly string[] | undefined;
}): Promise<DropInWrite> {
  const rendered = renderSecretsDropIn({
    workload: options.workload,
    keys: options.keys,
    dependsOn: options.dependsOn,
  });
  const path = join(options.systemdDir, rendered.path);
  const current = await readFile(path, "utf8").catch(() => undefined);
  if (current === rendered.text) return { path, written: false };
  await ensureDir(dirname(path), 0o755);
  await writeFileAtomic(path, rendered.text, { mode: 0o644 });
  return { path, written: true };
}

/**
 * The Podman secret names a drop-in references (`Secret=NAME[,options]` lines), in file
 * order; undefined when there is no such file.
 */
export async function readDropInSecrets(path: string): Promise<string[] | undefined> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
  const names: string[] = [];
  for (const line of text.split("\n")) {
    const match = /^\s*Secret\s*=\s*([^,\s]+)/.exec(line);
    if (match) names.push(match[1]!);
  }
  return names;
}
