import { isAbsolute } from "node:path";
import { PsiError } from "@psi/core/errors";
import {
  providerFetchesRemotely,
  quadletName,
  refreshServiceName,
  refreshTimerName,
  SERVE_SERVICE,
  SERVE_SOCKET,
  setupServiceName,
  TLS_RENEW_SERVICE,
  TLS_RENEW_TIMER,
} from "./names.js";
import type { UnitSettings } from "./settings.js";
import {
  renderRefreshService,
  renderRefreshTimer,
  renderServeQuadlet,
  renderServeSocket,
  renderServeUnit,
  renderSetupQuadlet,
  renderSetupUnit,
  renderTlsRenewQuadlet,
  renderTlsRenewTimer,
  renderTlsRenewUnit,
} from "./units.js";

/**
 * One generated file. `path` is relative: a quadlet (`kind: "quadlet"`, also quadlet
 * drop-ins) belongs in systemd_dir, a plain unit (`kind: "unit"`) in the unit dir.
 */
export interface RenderedFile {
  path: string;
  kind: "quadlet" | "unit";
  text: string;
}

/** native: units that run the `psi` binary; container: quadlets that run the PSI image. */
export type UnitMode = "native" | "container";

/** Options of {@link renderUnits}. */
export interface RenderUnitsOptions {
  mode: UnitMode;
  /** Required in container mode. */
  image?: string | undefined;
  /** Node for native `ExecStart=` lines (absolute); required in native mode. */
  nodePath?: string | undefined;
  /** PSI's `cli.js` for native `ExecStart=` lines (absolute); required in native mode. */
  psiPath?: string | undefined;
  socketActivation?: boolean | undefined;
}

/**
 * Every file of SPEC §10 for these settings: serve, one setup unit per provider, refresh
 * service and timer per remotely fetching provider when a cache backend is configured,
 * TLS renewal when certificates are configured, and the socket with socket activation.
 */
export function renderUnits(settings: UnitSettings, options: RenderUnitsOptions): RenderedFile[] {
  const { mode } = options;
  const socketActivation = options.socketActivation === true;
  const image = options.image;
  if (mode === "container" && !image) {
    throw new PsiError("unitgen.image_required", "container mode needs the PSI image", {
      hint: "pass the image reference, e.g. --image ghcr.io/example/psi:1",
    });
  }
  const nodePath = options.nodePath ?? "";
  const psiPath = options.psiPath ?? "";
  if (mode === "native" && !(isAbsolute(nodePath) && isAbsolute(psiPath))) {
    throw new PsiError(
      "unitgen.exec_required",
      `native mode needs absolute paths of Node and of psi's cli.js (got ${JSON.stringify(nodePath)} and ${JSON.stringify(psiPath)})`,
      { hint: "pass the running Node (process.execPath) and the cli.js it runs" },
    );
  }
  const files: RenderedFile[] = [];
  const add = (service: string, native: () => string, container: (image: string) => string) => {
    files.push(
      mode === "native"
        ? { path: service, kind: "unit", text: native() }
        : { path: quadletName(service), kind: "quadlet", text: container(image!) },
    );
  };
  add(
    SERVE_SERVICE,
    () => renderServeUnit(settings, { nodePath, psiPath, socketActivation }),
    (image) => renderServeQuadlet(settings, { image, socketActivation }),
  );
  if (socketActivation)
    files.push({ path: SERVE_SOCKET, kind: "unit", text: renderServeSocket(settings) });
  for (const provider of settings.providers) {
    add(
      setupServiceName(provider),
      () => renderSetupUnit(settings, provider, { nodePath, psiPath }),
      (image) => renderSetupQuadlet(settings, provider, { image }),
    );
    if (settings.cache && providerFetchesRemotely(provider)) {
      files.push(
        {
          path: refreshServiceName(provider),
          kind: "unit",
          text: renderRefreshService(settings, provider),
        },
        {
          path: refreshTimerName(provider),
          kind: "unit",
          text: renderRefreshTimer(settings, provider),
        },
      );
    }
  }
  if (settings.tlsOutputDirs.length > 0) {
    add(
      TLS_RENEW_SERVICE,
      () => renderTlsRenewUnit(settings, { nodePath, psiPath }),
      (image) => renderTlsRenewQuadlet(settings, { image }),
    );
    files.push({ path: TLS_RENEW_TIMER, kind: "unit", text: renderTlsRenewTimer() });
  }
  return files;
}

/**
 * What `--enable` turns on, as systemd unit names: plain units to `enable --now`, and
 * quadlet-generated services to `start` (systemd refuses to enable generated units; the
 * generator already applied their `[Install]` section at daemon-reload).
 */
export function unitsToEnable(files: readonly RenderedFile[]): {
  enable: string[];
  start: string[];
} {
  const enable: string[] = [];
  const start: string[] = [];
  for (const file of files) {
    const unit = file.path.replace(/\.container$/, ".service");
    // Oneshots that their timers start; enabling them would run them at boot as well.
    if (/-refresh\.service$/.test(unit) || unit === TLS_RENEW_SERVICE) continue;
    (file.kind === "quadlet" ? start : enable).push(unit);
  }
  return { enable, start };
}
