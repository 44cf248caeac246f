import { describe, expect, it } from "vitest";
import { NODE_FLAGS, type RenderedFile, renderUnits, type UnitSettings } from "../src/index.js";
import { FIXTURE_CASES, IMAGE, NATIVE, NODE_PATH, PSI_PATH, settingsFor } from "./configs.js";
import { parseUnit } from "./quadlet-keys.js";

/**
 * The directives the Python reference emits (its psi/unitgen.py and the tests that pin
 * it), per file and section, for the same settings. Compatibility means every one of them
 * is present in the same section here; more (hardening, CA trust) is allowed.
 * Deliberate differences: the TLS renewal runs `infisical tls renew` (the command's place
 * in this CLI, SPEC §10/§11) instead of `tls renew`, and the serve quadlet sets no
 * `Type=` (SPEC §10; the reference's later versions dropped `Type=simple` too).
 */
function reference(
  settings: UnitSettings,
  mode: "native" | "container",
): Map<string, Record<string, string[]>> {
  const files = new Map<string, Record<string, string[]>>();
  const wanted = "WantedBy=multi-user.target";
  const cache = settings.cache?.backend;
  const credLines = (unit: string) => [
    `Volume=/run/credentials/${unit}:/run/credentials:ro`,
    "Environment=CREDENTIALS_DIRECTORY=/run/credentials",
  ];
  const wiring = (unit: string) =>
    cache === "hsm"
      ? {
          c: ["Volume=pcscd-socket:/run/pcscd:rw", ...credLines(unit)],
          s: ["LoadCredentialEncrypted=hsm-pin"],
        }
      : cache === "tpm"
        ? {
            c: credLines(unit),
            s: [`LoadCredentialEncrypted=psi-cache-key:${settings.configDir}/cache.key`],
          }
        : { c: [], s: [] };
  const ca = settings.caCert
    ? [
        `Volume=${settings.caCert}:/etc/ssl/certs/ca-certificates.crt:ro`,
        "Environment=SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
      ]
    : [];
  if (mode === "native") {
    files.set("psi-secrets.service", {
      Unit: [
        "Description=PSI secret lookup service",
        "After=network-online.target",
        "Wants=network-online.target",
      ].filter((line) => cache !== "hsm" || !line.startsWith("After=")),
      Service: [
        "Type=simple",
        "Restart=on-failure",
        "RuntimeDirectory=psi",
        "StateDirectory=psi",
        ...(cache === "tpm" ? wiring("").s : []),
        `ExecStart=${NODE_PATH} ${NODE_FLAGS.serve.join(" ")} ${PSI_PATH} serve`,
      ],
      Install: [wanted],
    });
  } else {
    const w = wiring("psi-secrets.service");
    files.set("psi-secrets.container", {
      Unit: [
        "Description=PSI secret lookup service",
        `After=network-online.target${cache === "hsm" ? " pcscd.service" : ""}`,
        "Wants=network-online.target",
      ],
      Container: [
        "ContainerName=psi-secrets",
        `Image=${IMAGE}`,
        "Exec=serve",
        "Network=host",
        "SecurityLabelType=container_runtime_t",
        "Notify=healthy",
        `HealthCmd=curl -sf --unix-socket ${settings.socket} http://localhost/healthz`,
        "HealthStartPeriod=60s",
        `Volume=${settings.configDir}:${settings.configDir}:ro`,
        `Volume=${settings.stateDir}:${settings.stateDir}:Z`,
        "Volume=/run/psi:/run/psi:Z",
        ...ca,
        ...w.c,
      ],
      Service: ["Restart=on-failure", "RuntimeDirectory=psi", ...w.s],
      Install: [wanted],
    });
  }
  for (const provider of settings.providers) {
    const unit = `psi-${provider}-setup.service`;
    const network = provider === "infisical";
    const after = [...(network ? ["network-online.target"] : []), "psi-secrets.service"];
    const unitSection = [
      `Description=PSI ${provider} secrets setup`,
      ...(network ? ["Wants=network-online.target"] : []),
      "Requires=psi-secrets.service",
    ];
    if (mode === "native") {
      files.set(unit, {
        Unit: [...unitSection, `After=${after.join(" ")}`].filter(
          (l) => cache !== "hsm" || !l.startsWith("After="),
        ),
        Service: [
          "Type=oneshot",
          "RemainAfterExit=yes",
          `ExecStart=${NODE_PATH} ${NODE_FLAGS.other.join(" ")} ${PSI_PATH} setup --provider ${provider}`,
        ],
        Install: [wanted],
      });
    } else {
      const w = wiring(unit);
      files.set(`psi-${provider}-setup.container`, {
        Unit: [
          ...unitSection,
          `After=${[...after, ...(cache === "hsm" ? ["pcscd.service"] : [])].join(" ")}`,
        ],
        Container: [
          `ContainerName=psi-${provider}-setup`,
          `Image=${IMAGE}`,
          `Exec=setup --provider ${provider}`,
          "Network=host",
          "SecurityLabelType=container_runtime_t",
          `Volume=${settings.configDir}:${settings.configDir}:ro`,
          `Volume=${settings.stateDir}:${settings.stateDir}:Z`,
          `Volume=${settings.systemdDir}:${settings.systemdDir}:Z`,
          "Volume=/run/podman/podman.sock:/run/podman/podman.sock:z",
          "Volume=/run/dbus/system_bus_socket:/run/dbus/system_bus_socket",
          ...ca,
          ...w.c,
        ],
        Service: ["Type=oneshot", "RemainAfterExit=yes", ...w.s],
        Install: [wanted],
      });
    }
    if (settings.cache && provider === "infisical") {
      files.set("psi-infisical-refresh.service", {
        Unit: ["After=psi-infisical-setup.service"],
        Service: [
          "Type=oneshot",
          "ExecStart=/usr/bin/systemctl restart psi-infisical-setup.service",
        ],
      });
      const interval = settings.cache.refreshInterval;
      files.set("psi-infisical-refresh.timer", {
        Timer: [
          "Unit=psi-infisical-refresh.service",
          `OnBootSec=${interval}`,
          `OnUnitActiveSec=${interval}`,
          `RandomizedDelaySec=${settings.cache.refreshRandomizedDelay}`,
          "Persistent=true",
        ],
        Install: ["WantedBy=timers.target"],
      });
    }
  }
  if (settings.tlsOutputDirs.length > 0) {
    const unitSection = [
      "Description=PSI TLS certificate renewal",
      "After=network-online.target",
      "Wants=network-online.target",
    ];
    if (mode === "native") {
      files.set("psi-tls-renew.service", {
        Unit: unitSection,
        Service: [
          "Type=oneshot",
          `ExecStart=${NODE_PATH} ${NODE_FLAGS.other.join(" ")} ${PSI_PATH} infisical tls renew`,
        ],
      });
    } else {
      files.set("psi-tls-renew.container", {
        Unit: unitSection,
        Container: [
          "ContainerName=psi-tls-renew",
          `Image=${IMAGE}`,
          "Exec=infisical tls renew",
          "Network=host",
          `Volume=${settings.configDir}:${settings.configDir}:ro`,
          `Volume=${settings.stateDir}:${settings.stateDir}:Z`,
          ...settings.tlsOutputDirs.map((d) => `Volume=${d}:${d}:Z`),
        ],
        Service: ["Type=oneshot"],
      });
    }
    files.set("psi-tls-renew.timer", {
      Unit: ["Description=Daily PSI TLS certificate renewal"],
      Timer: ["OnCalendar=daily", "RandomizedDelaySec=1h", "Persistent=true"],
      Install: ["WantedBy=timers.target"],
    });
  }
  return files;
}

function lines(file: RenderedFile): Map<string, string[]> {
  return new Map(
    [...parseUnit(file.text)].map(([name, entries]) => [
      name,
      entries.map(([k, v]) => `${k}=${v}`),
    ]),
  );
}

describe("every directive the Python reference emits is present", () => {
  for (const testCase of FIXTURE_CASES.filter((c) => c.scope === "system" && !c.configFile)) {
    for (const mode of ["native", "container"] as const) {
      it(`${testCase.name} / ${mode}`, async () => {
        const settings = await settingsFor(testCase);
        const files = renderUnits(settings, { mode, image: IMAGE, ...NATIVE });
        const expected = reference(settings, mode);
        expect(files.map((f) => f.path).sort()).toEqual([...expected.keys()].sort());
        for (const file of files) {
          const actual = lines(file);
          for (const [section, wanted] of Object.entries(expected.get(file.path)!)) {
            const present = actual.get(section) ?? [];
            for (const line of wanted) expect(present, `${file.path} [${section}]`).toContain(line);
          }
        }
      });
    }
  }

  it("the native hsm serve unit keeps the reference's After= targets", async () => {
    const settings = await settingsFor(FIXTURE_CASES.find((c) => c.name === "hsm")!);
    const [serve] = renderUnits(settings, { mode: "native", ...NATIVE });
    expect(serve!.text).toContain("After=network-online.target pcscd.service\n");
  });
});
