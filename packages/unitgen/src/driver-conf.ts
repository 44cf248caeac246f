import { PsiError } from "@psi/core/errors";

/** Socket tokens are embedded in shell command lines, so only this alphabet is allowed (SPEC §4.2). */
const TOKEN = /^[A-Za-z0-9._~+/=-]{8,}$/;

/** Where `psi install` writes the driver configuration, relative to containers.conf.d. */
export const DRIVER_CONF_NAME = "psi.conf";

/**
 * `containers.conf.d/psi.conf` (SPEC §5), byte-compatible with the reference: Podman's
 * shell secret driver calls PSI through curl on the socket, with a bearer token when set.
 */
export function renderDriverConf(options: { socket: string; token?: string | undefined }): string {
  const { socket, token } = options;
  if (token !== undefined && token !== "" && !TOKEN.test(token)) {
    throw new PsiError(
      "unitgen.invalid_token",
      "the socket token has characters that cannot go into the driver's command lines",
      {
        hint: "use at least 8 characters from A-Z a-z 0-9 . _ ~ + / = -",
      },
    );
  }
  const auth = token ? ` -H 'Authorization: Bearer ${token}'` : "";
  const curl = `curl -sf${auth} --unix-socket ${socket}`;
  return [
    "[secrets]",
    'driver = "shell"',
    "",
    "[secrets.opts]",
    `store = "${curl} -X POST -d @- http://localhost/store/$SECRET_ID"`,
    `lookup = "${curl} http://localhost/lookup/$SECRET_ID"`,
    `delete = "${curl} -X DELETE http://localhost/delete/$SECRET_ID"`,
    `list = "${curl} http://localhost/list"`,
    "",
  ].join("\n");
}

/** File mode for psi.conf: 0600 when it embeds a token, else 0644 (SPEC §5). */
export function driverConfMode(options: { token?: string | undefined }): number {
  return options.token ? 0o600 : 0o644;
}
