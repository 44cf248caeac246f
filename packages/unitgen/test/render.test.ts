import { describe, expect, it } from "vitest";
import {
  driverConfMode,
  NODE_FLAGS,
  renderDriverConf,
  renderSecretsDropIn,
  renderUnits,
  unitsToEnable,
} from "../src/index.js";
import { FIXTURE_CASES, IMAGE, NATIVE, NODE_PATH, PSI_PATH, settingsFor } from "./configs.js";

describe("renderDriverConf (SPEC §5)", () => {
  it("renders the reference's text without a token, mode 0644", () => {
    expect(renderDriverConf({ socket: "/run/psi/psi.sock" })).toBe(
      [
        "[secrets]",
        'driver = "shell"',
        "",
        "[secrets.opts]",
        'store = "curl -sf --unix-socket /run/psi/psi.sock -X POST -d @- http://localhost/store/$SECRET_ID"',
        'lookup = "curl -sf --unix-socket /run/psi/psi.sock http://localhost/lookup/$SECRET_ID"',
        'delete = "curl -sf --unix-socket /run/psi/psi.sock -X DELETE http://localhost/delete/$SECRET_ID"',
        'list = "curl -sf --unix-socket /run/psi/psi.sock http://localhost/list"',
        "",
      ].join("\n"),
    );
    expect(driverConfMode({})).toBe(0o644);
  });

  it("puts the bearer token right after -sf in every command, mode 0600", () => {
    const text = renderDriverConf({
      socket: "/run/user/1000/psi/psi.sock",
      token: "abc.DEF_123~+/=-",
    });
    const auth =
      "curl -sf -H 'Authorization: Bearer abc.DEF_123~+/=-' --unix-socket /run/user/1000/psi/psi.sock";
    expect(text).toContain(`store = "${auth} -X POST -d @- http://localhost/store/$SECRET_ID"`);
    expect(text).toContain(`lookup = "${auth} http://localhost/lookup/$SECRET_ID"`);
    expect(text).toContain(`delete = "${auth} -X DELETE http://localhost/delete/$SECRET_ID"`);
    expect(text).toContain(`list = "${auth} http://localhost/list"`);
    expect(driverConfMode({ token: "abc.DEF_123~+/=-" })).toBe(0o600);
  });

  it("refuses a token that would break out of the shell command", () => {
    expect(() => renderDriverConf({ socket: "/s", token: "abc'; rm -rf / #" })).toThrow(
      expect.objectContaining({ code: "unitgen.invalid_token" }),
    );
  });
});

describe("renderSecretsDropIn (SPEC §9)", () => {
  it("without depends_on: only [Container], keys sorted", () => {
    expect(
      renderSecretsDropIn({ workload: "myapp", keys: ["DB_PASSWORD", "API_KEY", "DB_HOST"] }),
    ).toEqual({
      path: "myapp.container.d/50-secrets.conf",
      kind: "quadlet",
      text:
        "[Container]\n" +
        "Secret=myapp--API_KEY,type=env,target=API_KEY\n" +
        "Secret=myapp--DB_HOST,type=env,target=DB_HOST\n" +
        "Secret=myapp--DB_PASSWORD,type=env,target=DB_PASSWORD\n",
    });
  });

  it("with depends_on: [Unit] After= and Wants= first", () => {
    const dropIn = renderSecretsDropIn({
      workload: "myapp",
      keys: ["B", "A"],
      dependsOn: ["psi-infisical-setup.service", "db.service"],
    });
    expect(dropIn.text).toBe(
      "[Unit]\n" +
        "After=psi-infisical-setup.service db.service\n" +
        "Wants=psi-infisical-setup.service db.service\n" +
        "\n" +
        "[Container]\n" +
        "Secret=myapp--A,type=env,target=A\n" +
        "Secret=myapp--B,type=env,target=B\n",
    );
  });

  it("template workloads keep the @: one drop-in for every instance", () => {
    const dropIn = renderSecretsDropIn({ workload: "windmill-worker@", keys: ["MODE"] });
    expect(dropIn.path).toBe("windmill-worker@.container.d/50-secrets.conf");
    expect(dropIn.text).toBe("[Container]\nSecret=windmill-worker@--MODE,type=env,target=MODE\n");
  });

  it("sorts by code point as Python does (uppercase before underscore before lowercase)", () => {
    const text = renderSecretsDropIn({ workload: "w", keys: ["a", "_", "B", "A_B", "AB"] }).text;
    expect(
      text
        .split("\n")
        .filter(Boolean)
        .slice(1)
        .map((l) => l.split("target=")[1]),
    ).toEqual(["AB", "A_B", "B", "_", "a"]);
  });
});

describe("renderUnits", () => {
  it("container mode without an image is an error", async () => {
    const settings = await settingsFor(FIXTURE_CASES[0]!);
    expect(() => renderUnits(settings, { mode: "container", ...NATIVE })).toThrow(
      expect.objectContaining({ code: "unitgen.image_required" }),
    );
  });

  it("native mode needs absolute Node and cli.js paths: never a PATH lookup under systemd", async () => {
    const settings = await settingsFor(FIXTURE_CASES[0]!);
    for (const exec of [{}, { nodePath: "node", psiPath: PSI_PATH }, { nodePath: NODE_PATH }]) {
      expect(() => renderUnits(settings, { mode: "native", ...exec })).toThrow(
        expect.objectContaining({ code: "unitgen.exec_required" }),
      );
    }
    const [serve] = renderUnits(settings, { mode: "native", ...NATIVE });
    expect(serve!.text).toContain(
      `\nExecStart=${NODE_PATH} ${NODE_FLAGS.serve.join(" ")} ${PSI_PATH} serve\n`,
    );
  });

  it("-c only when the config is not where psi looks by itself", async () => {
    const custom = await settingsFor(FIXTURE_CASES.find((c) => c.configFile)!);
    const [native] = renderUnits(custom, { mode: "native", ...NATIVE });
    expect(native!.text).toContain(`${PSI_PATH} serve -c /srv/psi/psi.yaml\n`);
    const [quadlet] = renderUnits(custom, { mode: "container", image: IMAGE });
    expect(quadlet!.text).toContain("\nExec=serve -c /srv/psi/psi.yaml\n");
    expect(quadlet!.text).toContain("\nVolume=/srv/psi:/srv/psi:ro\n");
    const [plain] = renderUnits(await settingsFor(FIXTURE_CASES[0]!), {
      mode: "container",
      image: IMAGE,
    });
    expect(plain!.text).toContain("\nExec=serve\n");
  });

  it("no refresh timer without a cache backend, no TLS units without certificates", async () => {
    const settings = await settingsFor(FIXTURE_CASES[0]!);
    const paths = renderUnits(settings, { mode: "native", ...NATIVE }).map((f) => f.path);
    expect(paths).toEqual(["psi-secrets.service", "psi-infisical-setup.service"]);
  });

  it("--enable starts serve, setup, timers and the socket; never the timer-driven oneshots", async () => {
    const ca = await settingsFor(FIXTURE_CASES.find((c) => c.name === "ca-cert")!);
    expect(
      unitsToEnable(renderUnits(ca, { mode: "native", ...NATIVE, socketActivation: true })),
    ).toEqual({
      enable: [
        "psi-secrets.service",
        "psi-secrets.socket",
        "psi-infisical-setup.service",
        "psi-infisical-refresh.timer",
        "psi-tls-renew.timer",
      ],
      start: [],
    });
    // systemd refuses to enable quadlet-generated units: they are started instead.
    expect(unitsToEnable(renderUnits(ca, { mode: "container", image: IMAGE, ...NATIVE }))).toEqual({
      enable: ["psi-infisical-refresh.timer", "psi-tls-renew.timer"],
      start: ["psi-secrets.service", "psi-infisical-setup.service"],
    });
  });

  it("user scope: default.target, systemctl --user, user paths", async () => {
    const user = await settingsFor(FIXTURE_CASES.find((c) => c.scope === "user")!);
    const files = renderUnits(user, { mode: "native", ...NATIVE });
    const all = files.map((f) => f.text).join("\n");
    expect(all).not.toContain("multi-user.target");
    expect(all).toContain("WantedBy=default.target");
    expect(all).toContain(
      "ExecStart=/usr/bin/systemctl --user restart psi-infisical-setup.service",
    );
    expect(all).not.toContain("ProtectSystem=");
  });
});
