import { lstat } from "node:fs/promises";
import { join } from "node:path";
import type { PsiContext } from "@psi/core";
import { PsiError, secretIdProblem } from "@psi/core";
import type { PodmanClient } from "@psi/podman";
import { providerFetchesRemotely } from "@psi/unitgen";
import { differingDriverOptions } from "./driver-options.js";
import { dropInPath, readDropInSecrets } from "./drop-in.js";
import { ownerOf } from "./names.js";

/**
 * `managed`: mapping file present, driver options as `psi install` would write them now;
 * `stale-opts`: mapping present, options differ (the socket moved, the token was rotated);
 * `orphaned`: no mapping file in state_dir (a lookup would answer 404).
 */
export type SecretClass = "managed" | "stale-opts" | "orphaned";

/** One shell-driver Podman secret as the dry run sees it. */
export interface DryRunSecret {
  name: string;
  id: string;
  class: SecretClass;
  /** The configured workload the name belongs to (`<workload>--<KEY>`), if any. */
  workload?: string;
  /** For `stale-opts`: the driver options that differ (store, lookup, delete, list). */
  differingOptions?: string[];
}

/** One workload's drop-in against Podman. */
export interface DryRunWorkload {
  name: string;
  provider: string;
  dropIn: string;
  dropInExists: boolean;
  /** Podman secrets of the workload that the drop-in does not reference. */
  missingFromDropIn: string[];
  /** Drop-in `Secret=` references with no Podman secret (the container would not start). */
  missingInPodman: string[];
}

/** What `psi setup --dry-run` reports. */
export interface DryRunReport {
  dryRun: true;
  stateDir: string;
  secrets: DryRunSecret[];
  counts: { managed: number; staleOpts: number; orphaned: number };
  workloads: DryRunWorkload[];
  /** True when nothing is stale, orphaned or missing. */
  clean: boolean;
}

/** Options of {@link planDryRun}. */
export interface DryRunOptions {
  context: PsiContext;
  podman: PodmanClient;
  /** The shell driver options `psi install` would write now (see `parseDriverOptions`). */
  expectedDriverOptions: Readonly<Record<string, string>>;
  /** Only the workloads of this provider. */
  provider?: string | undefined;
  signal?: AbortSignal;
}

const byName = <T extends { name: string }>(a: T, b: T) =>
  a.name < b.name ? -1 : a.name > b.name ? 1 : 0;

async function mappingExists(stateDir: string, id: string): Promise<boolean> {
  if (secretIdProblem(id) !== undefined) return false;
  try {
    return (await lstat(join(stateDir, id))).isFile();
  } catch {
    return false;
  }
}

/**
 * The dry run of setup (SPEC §9): contacts only the Podman API and state_dir (and reads
 * the drop-ins). Classifies every shell-driver Podman secret and compares each fetching
 * workload's drop-in with Podman. Podman being unreachable is an error (thrown).
 */
export async function planDryRun(options: DryRunOptions): Promise<DryRunReport> {
  const { context, podman } = options;
  const { stateDir, systemdDir } = context.paths;
  const workloads = Object.entries(context.config.workloads ?? {});
  const workloadNames = workloads.map(([name]) => name);
  if (
    options.provider !== undefined &&
    !(options.provider in (context.config.providers ?? {})) &&
    !workloads.some(([, workload]) => workload.provider === options.provider)
  ) {
    throw new PsiError(
      "setup.unknown_provider",
      `provider "${options.provider}" is not configured`,
      {
        hint: `configured providers: ${Object.keys(context.config.providers ?? {}).join(", ") || "none"}`,
      },
    );
  }
  const listed = await podman.listSecrets(options.signal ? { signal: options.signal } : {});
  const shell = listed.filter((secret) => secret.driver === "shell");

  const secrets: DryRunSecret[] = await Promise.all(
    shell.map(async (secret) => {
      const owner = ownerOf(secret.name, workloadNames);
      const entry: DryRunSecret = { name: secret.name, id: secret.id, class: "managed" };
      if (owner) entry.workload = owner.workload;
      if (!(await mappingExists(stateDir, secret.id))) {
        entry.class = "orphaned";
        return entry;
      }
      const differing = differingDriverOptions(secret.driverOptions, options.expectedDriverOptions);
      if (differing.length > 0) {
        entry.class = "stale-opts";
        entry.differingOptions = differing;
      }
      return entry;
    }),
  );
  secrets.sort(byName);

  const names = new Set(listed.map((secret) => secret.name));
  const report: DryRunWorkload[] = [];
  for (const [name, workload] of workloads) {
    if (options.provider !== undefined && workload.provider !== options.provider) continue;
    // Store-only providers (nitrokeyhsm, local) get no drop-in from setup.
    if (!providerFetchesRemotely(workload.provider)) continue;
    const path = dropInPath(systemdDir, name);
    const referenced = (await readDropInSecrets(path)) ?? undefined;
    const references = new Set(referenced ?? []);
    const owned = shell
      .filter((secret) => ownerOf(secret.name, workloadNames)?.workload === name)
      .map((secret) => secret.name)
      .sort();
    report.push({
      name,
      provider: workload.provider,
      dropIn: path,
      dropInExists: referenced !== undefined,
      missingFromDropIn: owned.filter((secret) => !references.has(secret)),
      missingInPodman: [...references].filter((secret) => !names.has(secret)).sort(),
    });
  }

  const count = (kind: SecretClass) => secrets.filter((secret) => secret.class === kind).length;
  const counts = {
    managed: count("managed"),
    staleOpts: count("stale-opts"),
    orphaned: count("orphaned"),
  };
  return {
    dryRun: true,
    stateDir,
    secrets,
    counts,
    workloads: report,
    clean:
      counts.staleOpts === 0 &&
      counts.orphaned === 0 &&
      report.every(
        (workload) =>
          workload.missingFromDropIn.length === 0 && workload.missingInPodman.length === 0,
      ),
  };
}
