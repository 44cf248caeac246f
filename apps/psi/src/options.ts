// Options several commands share, so `--help` and docs/cli.md say the same thing.
import { Option } from "commander";

/**
 * `--podman-socket <path>` of the commands that talk to Podman; `use` says what for
 * (`to resolve names`), after "Podman API socket".
 */
export function podmanSocketOption(use?: string): Option {
  return new Option(
    "--podman-socket <path>",
    `Podman API socket${use ? ` ${use}` : ""} (env PSI_PODMAN_SOCKET; default: the scope's)`,
  );
}

/** `--socket <path>` of setup and cache refresh: the socket the driver options name. */
export function installedSocketOption(): Option {
  return new Option(
    "--socket <path>",
    "PSI's lookup socket, as given to psi install (env PSI_SOCKET; default: what the installed psi.conf names)",
  );
}

/** A repeatable option (`--name X --name Y`): collects every value. */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}
