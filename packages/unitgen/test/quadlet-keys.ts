// Keys quadlet accepts in a .container file's [Container] section, as data.
//
// Source: podman-systemd.unit(5), the "[Container] options" table of
// docs/source/markdown/podman-systemd.unit.5.md in containers/podman
// (commit 00b40dba52da73ab66e62edd8b5f57d77692caaf), i.e. Podman ≥ 4.4 up to 5.x.
// Quadlet fails to generate the service when it meets a key it does not know, so a
// generated quadlet must use no other key.
export const CONTAINER_KEYS: ReadonlySet<string> = new Set([
  "AddCapability",
  "AddDevice",
  "AddHost",
  "Annotation",
  "AutoUpdate",
  "CgroupsMode",
  "ContainerName",
  "ContainersConfModule",
  "DNS",
  "DNSOption",
  "DNSSearch",
  "DropCapability",
  "Entrypoint",
  "Environment",
  "EnvironmentFile",
  "EnvironmentHost",
  "Exec",
  "ExposeHostPort",
  "GIDMap",
  "GlobalArgs",
  "Group",
  "GroupAdd",
  "HealthCmd",
  "HealthInterval",
  "HealthLogDestination",
  "HealthMaxLogCount",
  "HealthMaxLogSize",
  "HealthOnFailure",
  "HealthRetries",
  "HealthStartPeriod",
  "HealthStartupCmd",
  "HealthStartupInterval",
  "HealthStartupRetries",
  "HealthStartupSuccess",
  "HealthStartupTimeout",
  "HealthTimeout",
  "HostName",
  "Image",
  "IP",
  "IP6",
  "Label",
  "LogDriver",
  "LogOpt",
  "Mask",
  "Memory",
  "Mount",
  "Network",
  "NetworkAlias",
  "NoNewPrivileges",
  "Notify",
  "PidsLimit",
  "Pod",
  "PodmanArgs",
  "PublishPort",
  "Pull",
  "ReadOnly",
  "ReadOnlyTmpfs",
  "ReloadCmd",
  "ReloadSignal",
  "Retry",
  "RetryDelay",
  "Rootfs",
  "RunInit",
  "SeccompProfile",
  "Secret",
  "SecurityLabelDisable",
  "SecurityLabelFileType",
  "SecurityLabelLevel",
  "SecurityLabelNested",
  "SecurityLabelType",
  "ShmSize",
  "StartWithPod",
  "StopSignal",
  "StopTimeout",
  "SubGIDMap",
  "SubUIDMap",
  "Sysctl",
  "Timezone",
  "Tmpfs",
  "UIDMap",
  "Ulimit",
  "Unmask",
  "User",
  "UserNS",
  "Volume",
  "WorkingDir",
]);

// Same page, "Enabling unit files": the generator applies only these [Install] keys.
export const INSTALL_KEYS: ReadonlySet<string> = new Set([
  "Alias",
  "WantedBy",
  "RequiredBy",
  "UpheldBy",
]);

/** Sections of a unit file: name → `[key, value]` pairs in order. */
export function parseUnit(text: string): Map<string, Array<[string, string]>> {
  const sections = new Map<string, Array<[string, string]>>();
  let current: Array<[string, string]> | undefined;
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      current = [];
      sections.set(header[1]!, current);
      continue;
    }
    const eq = line.indexOf("=");
    if (!current || eq <= 0) throw new Error(`not a unit-file line: ${line}`);
    current.push([line.slice(0, eq), line.slice(eq + 1)]);
  }
  return sections;
}

/** Keys of a quadlet that quadlet would reject: unknown [Container] keys and [Install] keys it ignores. */
export function unknownQuadletKeys(text: string): string[] {
  const bad: string[] = [];
  for (const [section, entries] of parseUnit(text)) {
    for (const [key] of entries) {
      if (section === "Container" && !CONTAINER_KEYS.has(key)) bad.push(`[Container] ${key}`);
      if (section === "Install" && !INSTALL_KEYS.has(key)) bad.push(`[Install] ${key}`);
    }
  }
  return bad;
}

/**
 * The systemd part of a quadlet as a plain service, for `systemd-analyze verify`: quadlet
 * passes [Unit], [Service] and [Install] through and adds an `ExecStart=` running podman.
 */
export function quadletAsService(text: string, execStart: string): string {
  const sections = parseUnit(text);
  sections.delete("Container");
  const service = sections.get("Service") ?? [];
  service.push(["ExecStart", execStart]);
  sections.set("Service", service);
  return `${[...sections].map(([name, entries]) => [`[${name}]`, ...entries.map(([k, v]) => `${k}=${v}`)].join("\n")).join("\n\n")}\n`;
}
