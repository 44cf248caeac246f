import { describe, expect, it } from "vitest";
import { renderPcscdSetup } from "../src/index.js";
import { rejection } from "./helpers.js";

function file(setup: ReturnType<typeof renderPcscdSetup>, name: string): string {
  const found = setup.files.find((f) => f.name === name);
  if (!found) throw new Error(`no ${name} in ${setup.files.map((f) => f.name).join(", ")}`);
  return found.text;
}

// Keys podman-systemd.unit(5) (Podman 4.4+) accepts in the sections rendered here.
const CONTAINER_KEYS = new Set([
  "ContainerName",
  "Image",
  "Network",
  "AddDevice",
  "Volume",
  "SecurityLabelDisable",
]);

describe("setup-pcscd", () => {
  it("container mode: a volume quadlet named after pcscd_volume and a pcscd.container using it", () => {
    const setup = renderPcscdSetup({ volume: "hsm-pcscd", configDir: "/etc/psi" });
    expect(setup.files.map((f) => [f.name, f.target])).toEqual([
      ["hsm-pcscd.volume", "quadlet"],
      ["pcscd.container", "quadlet"],
      ["pcscd.Containerfile", "config"],
    ]);
    expect(file(setup, "hsm-pcscd.volume")).toContain("\n[Volume]\nVolumeName=hsm-pcscd\n");
    const container = file(setup, "pcscd.container");
    expect(container).toContain("Volume=hsm-pcscd.volume:/run/pcscd:rw");
    expect(container).toContain("Image=localhost/psi-pcscd:latest");
    expect(container).toContain("AddDevice=/dev/bus/usb");
    const section = container.slice(
      container.indexOf("[Container]"),
      container.indexOf("[Service]"),
    );
    for (const line of section.split("\n").slice(1)) {
      if (line === "" || line.startsWith("#")) continue;
      expect(CONTAINER_KEYS).toContain(line.slice(0, line.indexOf("=")));
    }
    expect(file(setup, "pcscd.Containerfile")).toContain(
      'CMD ["/usr/sbin/pcscd", "--foreground", "--disable-polkit"]',
    );
    expect(setup.commands[0]).toBe(
      "podman build -t localhost/psi-pcscd:latest -f /etc/psi/pcscd.Containerfile /etc/psi",
    );
  });

  it("host mode: binds the host's /run/pcscd into the named volume and allows root through polkit", () => {
    const setup = renderPcscdSetup({ volume: "pcscd-socket", mode: "host" });
    expect(setup.files.map((f) => [f.name, f.target])).toEqual([["50-psi-pcscd.rules", "polkit"]]);
    expect(file(setup, "50-psi-pcscd.rules")).toContain("org.debian.pcsc-lite.access_pcsc");
    expect(setup.commands).toContain(
      "podman volume create --opt type=none --opt o=bind --opt device=/run/pcscd pcscd-socket",
    );
  });

  it("refuses a volume name Podman would not accept", async () => {
    const error = await rejection(
      Promise.resolve().then(() => renderPcscdSetup({ volume: "bad name;rm" })),
    );
    expect(error.code).toBe("nitrokeyhsm.bad_volume");
  });
});
