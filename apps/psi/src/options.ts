// Option texts several commands share, so `--help` and docs/cli.md say the same thing.

/** `--podman-socket` of the commands that talk to Podman. */
export const PODMAN_SOCKET = "Podman API socket (env PSI_PODMAN_SOCKET; default: the scope's)";

/** `--socket` of setup and cache refresh: the socket the driver options name. */
export const INSTALLED_SOCKET =
  "PSI's lookup socket, as given to psi install (env PSI_SOCKET; default: what the installed psi.conf names)";

/** A repeatable option (`--name X --name Y`): collects every value. */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}
