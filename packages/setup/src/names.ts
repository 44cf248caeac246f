/** The Podman secret setup registers for a workload key (SPEC §9): `<workload>--<KEY>`. */
export function podmanSecretName(workload: string, key: string): string {
  return `${workload}--${key}`;
}

/**
 * Keys become Podman secret names and `Secret=NAME,type=env,target=KEY` lines, so they
 * must not hold characters that end a field there (`,` `=` whitespace) or a path (`/`).
 */
const KEY = /^[A-Za-z0-9_.-]+$/;

/** Why `key` cannot be registered, or undefined when it can. */
export function keyProblem(key: string): string | undefined {
  if (KEY.test(key)) return undefined;
  return "only letters, digits, '_', '.' and '-' can appear in a Podman secret name and a drop-in Secret= line";
}

/**
 * The configured workload a Podman secret name belongs to: the longest workload name `w`
 * with `name` starting `w--` (so `app--x--KEY` belongs to workload `app--x`, not `app`).
 */
export function ownerOf(
  name: string,
  workloads: Iterable<string>,
): { workload: string; key: string } | undefined {
  let best: string | undefined;
  for (const workload of workloads) {
    const prefix = `${workload}--`;
    if (name.length > prefix.length && name.startsWith(prefix)) {
      if (best === undefined || workload.length > best.length) best = workload;
    }
  }
  return best === undefined ? undefined : { workload: best, key: name.slice(best.length + 2) };
}
