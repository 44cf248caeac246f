import { join } from "node:path";
import { parseConfig } from "./config-load.js";
import { ConfigSchema } from "./config-schema.js";
import { isPsiError } from "./errors.js";
import { defaultPaths, type ScopePaths } from "./paths.js";

// docs/configuration.md is rendered from the valibot schema so it cannot drift: a key added
// to the schema (with `about()` prose) appears after `pnpm docs:config`, and a test fails
// when the committed file differs from what this renders.

/** One row of the reference: a key as the schema defines it. */
export interface ConfigKeyDoc {
  /** YAML path, `<name>` for a name chosen by the operator, `[]` for a list item. */
  path: string;
  type: string;
  required: boolean;
  /** Default per scope (equal for most keys); undefined when the key has none. */
  defaults: { system: string | undefined; user: string | undefined };
  description: string;
  /** What the loader says about a bad value (after the file, line:column and YAML path). */
  messages: string[];
  /** Present when the key exists only for one value of a discriminator (`method`). */
  when?: string;
}

interface Node {
  type: string;
  kind?: string;
  wrapped?: Node;
  default?: unknown;
  entries?: Record<string, Node>;
  item?: Node;
  value?: Node;
  key?: unknown;
  options?: unknown[];
  literal?: unknown;
  message?: unknown;
  pipe?: Node[];
  description?: string;
  requirement?: unknown;
}

const WRAPPERS = new Set(["optional", "nullish", "nullable", "exact_optional", "undefinedable"]);

function descriptionOf(schema: Node): string {
  for (const item of schema.pipe ?? []) {
    if (item.kind === "metadata" && item.type === "description" && item.description) {
      return item.description;
    }
  }
  return "";
}

/** Messages a schema and its pipe give for a bad value; message functions see both issue shapes. */
function messagesOf(schema: Node, out: Set<string>, seen = new Set<Node>()): void {
  if (seen.has(schema)) return;
  seen.add(schema);
  const { message } = schema;
  if (typeof message === "string") out.add(message);
  if (typeof message === "function") {
    for (const issue of [{ path: undefined }, { path: [] }]) {
      const text: unknown = message(issue);
      if (typeof text === "string") out.add(text);
    }
  }
  for (const item of schema.pipe ?? []) {
    if (item.kind === "schema" || item.kind === "validation") messagesOf(item, out, seen);
  }
  if (schema.wrapped) messagesOf(schema.wrapped, out, seen);
  if (schema.type === "union" && schema.options) {
    for (const option of schema.options) messagesOf(option as Node, out, seen);
  }
}

/** Looks through optional/nullish wrappers (and `maybe()`'s pipe, which keeps `wrapped`). */
function unwrap(schema: Node): { core: Node; optional: boolean; fallback: unknown } {
  let core = schema;
  let optional = false;
  let fallback: unknown;
  while (WRAPPERS.has(core.type) && core.wrapped) {
    optional = true;
    if (fallback === undefined && core.default !== undefined) fallback = core.default;
    core = core.wrapped;
  }
  return { core, optional, fallback };
}

function typeName(core: Node): string {
  switch (core.type) {
    case "string":
      return "string";
    case "number":
      return "number";
    case "boolean":
      return "boolean";
    case "literal":
      return JSON.stringify(core.literal);
    case "picklist":
      return (core.options ?? []).map((o) => JSON.stringify(o)).join(" \\| ");
    case "union":
      return [...new Set((core.options ?? []).map((o) => typeName(unwrap(o as Node).core)))].join(
        " or ",
      );
    case "array":
      return core.item ? `list of ${typeName(unwrap(core.item).core)}` : "list";
    case "record":
      return "mapping of names";
    case "object":
    case "strict_object":
    case "variant":
      return "mapping";
    default:
      return core.type;
  }
}

function show(value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === "object" && !Array.isArray(value) && Object.keys(value).length === 0) {
    return undefined;
  }
  if (Array.isArray(value)) return value.length === 0 ? "[]" : `[${value.join(", ")}]`;
  return String(value);
}

/** Defaults that depend on the scope (SPEC §2) or on another key, computed from the paths. */
const SCOPE_DEFAULTS: Record<string, (paths: ScopePaths, scope: "system" | "user") => string> = {
  scope: (_paths, scope) =>
    scope === "system" ? "system (when run as root)" : "user (when run as any other user)",
  state_dir: (paths) => paths.stateDir,
  systemd_dir: (paths) => paths.systemdDir,
  "cache.path": (paths) => join(paths.stateDir, "cache.enc"),
  "cache.key_file": (paths) => join(paths.configDir, "cache.keyfile"),
  "providers.nitrokeyhsm.public_key_cache": (paths) =>
    join(paths.stateDir, "nitrokeyhsm-pubkey.der"),
};

const USER_ENV = { XDG_RUNTIME_DIR: "$XDG_RUNTIME_DIR" };

/** Every key of the configuration schema, in schema order, with its documentation. */
export function describeConfigKeys(): ConfigKeyDoc[] {
  const rows: ConfigKeyDoc[] = [];
  const system = defaultPaths("system", {}, 0);
  const user = defaultPaths("user", USER_ENV, 1000, "~");

  const walk = (schema: Node, path: string, required: boolean, when?: string): void => {
    const { core, optional, fallback } = unwrap(schema);
    const scoped = SCOPE_DEFAULTS[path];
    const shown = show(fallback);
    const messages = new Set<string>();
    if (!["object", "strict_object", "record"].includes(core.type)) {
      messagesOf(schema, messages);
    } else {
      if (typeof core.message === "string") messages.add(core.message);
      // A record's names have their own rules (workload names become file names).
      if (core.type === "record" && core.key) messagesOf(core.key as Node, messages);
    }
    const twin = rows.find(
      (row) => row.path === path && row.description === descriptionOf(schema) && row.when,
    );
    if (twin && when) {
      // The same key under several discriminator values (identity_id): one row.
      twin.when = `${twin.when}, ${when.slice(when.indexOf(":") + 2)}`;
      return;
    }
    rows.push({
      path,
      type: typeName(core),
      required: required && !optional,
      defaults: scoped
        ? { system: scoped(system, "system"), user: scoped(user, "user") }
        : { system: shown, user: shown },
      description: descriptionOf(schema),
      messages: [...messages],
      ...(when === undefined ? {} : { when }),
    });
    children(core, path, when);
  };

  const children = (core: Node, path: string, when?: string): void => {
    const prefix = path === "" ? "" : `${path}.`;
    if ((core.type === "object" || core.type === "strict_object") && core.entries) {
      for (const [key, entry] of Object.entries(core.entries)) {
        walk(entry, `${prefix}${key}`, true, when);
      }
    } else if (core.type === "record" && core.value) {
      const { core: value } = unwrap(core.value);
      const name = `${prefix}<name>`;
      if (["object", "strict_object", "variant"].includes(value.type)) children(value, name, when);
    } else if (core.type === "array" && core.item) {
      const { core: item } = unwrap(core.item);
      if (["object", "strict_object", "variant"].includes(item.type)) {
        children(item, `${path}[]`, when);
      }
    } else if (core.type === "variant" && core.options && typeof core.key === "string") {
      const key = core.key;
      const done = new Set<string>();
      for (const option of core.options as Node[]) {
        const literal = option.entries?.[key] ? unwrap(option.entries[key]).core.literal : "";
        for (const [name, entry] of Object.entries(option.entries ?? {})) {
          const full = `${prefix}${name}`;
          if (name === key) {
            if (done.has(full)) continue;
            done.add(full);
            const values = (core.options as Node[]).map((o) =>
              o.entries?.[key] ? JSON.stringify(unwrap(o.entries[key]).core.literal) : "",
            );
            const messages = new Set<string>();
            messagesOf(core, messages);
            rows.push({
              path: full,
              type: values.join(" \\| "),
              required: true,
              defaults: { system: undefined, user: undefined },
              description: (core.options as Node[])
                .map((o) => {
                  const literalSchema = o.entries?.[key];
                  if (!literalSchema) return "";
                  return `\`${String(unwrap(literalSchema).core.literal)}\`: ${descriptionOf(literalSchema)}`;
                })
                .join(" "),
              messages: [...messages],
            });
          } else {
            walk(entry, full, true, `${key}: ${String(literal)}`);
          }
        }
      }
    }
  };

  children(ConfigSchema as unknown as Node, "");
  return rows;
}

const cell = (text: string) => text.replaceAll("|", "\\|").replaceAll("\n", " ");
const code = (text: string | undefined) =>
  text === undefined ? "—" : `\`${text.replaceAll("|", "\\|")}\``;

const BAD_EXAMPLE = `cache:
  backend: tmp
  refresh_interval: soon
workloads:
  web:
    secrets:
      - { project: shop, path: /web }
`;

/** What the loader really prints for a broken file (rendered, so it cannot drift either). */
function exampleError(): string {
  try {
    parseConfig(BAD_EXAMPLE, "/etc/psi/config.yaml", { env: {}, uid: 0, home: "/root" });
  } catch (error) {
    if (isPsiError(error)) return `psi: ${error.message}\n  hint: ${error.hint ?? ""}`;
  }
  throw new Error("the example configuration was expected to be invalid");
}

/** The text of docs/configuration.md. */
export function renderConfigReference(): string {
  const rows = describeConfigKeys();
  const sections = new Map<string, ConfigKeyDoc[]>();
  for (const row of rows) {
    const top = row.path.split(/[.[]/)[0] ?? row.path;
    const nested = row.path !== top || ["mapping", "mapping of names"].includes(row.type);
    const section =
      !nested || row.path === "providers"
        ? "top level"
        : top === "providers"
          ? row.path.split(".").slice(0, 2).join(".")
          : top;
    const list = sections.get(section) ?? [];
    list.push(row);
    sections.set(section, list);
  }

  const out: string[] = [
    "<!-- Generated from packages/core/src/config-schema.ts by `pnpm docs:config`. Do not edit: change the schema (its `about()` texts) and regenerate. -->",
    "",
    "# Configuration reference",
    "",
    "PSI reads one YAML file: `/etc/psi/config.yaml` when it runs as root (scope `system`),",
    "`~/.config/psi/config.yaml` otherwise (scope `user`). `--config`/`-c` or `PSI_CONFIG`",
    "name another file. A missing file is an error that says how to create one.",
    "",
    "How the file is checked:",
    "",
    "- Every problem is reported at once, each as `FILE:LINE:COLUMN: YAML.PATH: what was expected, got what was found`,",
    "  and nothing is started or changed. Values of `client_id`, `client_secret`, `socket_token` and `pin` are never",
    "  echoed (`got a string`).",
    "- Unknown top-level keys are errors naming the closest known key. Unknown keys inside a block are",
    "  warnings (the Python implementation ignores them, so a file that works there keeps working).",
    '- A required key that is absent: `missing required key "KEY"`. An empty value (`key:`) means "not set".',
    "- Cross-checks: every Infisical project needs auth (its own or `providers.infisical.auth`); every",
    "  workload's provider must be configured under `providers`; every source's `project` must be configured.",
    "- `PSI_*` environment variables override the top-level scalars: `PSI_SCOPE`, `PSI_STATE_DIR`,",
    "  `PSI_SYSTEMD_DIR`, `PSI_CA_CERT`, `PSI_SOCKET_TOKEN` (an error then names the variable).",
    "- YAML 1.1, as the Python implementation reads it: `yes`/`no` are booleans, `0640` is octal.",
    "- Durations are systemd time spans (`90s`, `30min`, `1h`, `90d`) or a number of seconds.",
    "",
    "For example, this file:",
    "",
    "```yaml",
    BAD_EXAMPLE.trimEnd(),
    "```",
    "",
    "is refused with:",
    "",
    "```text",
    exampleError(),
    "```",
    "",
    "Columns: **default** is what applies when the key is absent or empty (system scope / user scope",
    "where they differ; `—`: no default). **when invalid** is the message after the file, position and path.",
    "`<name>` is a name you choose; `[]` is an item of a list.",
    "",
  ];

  for (const [section, list] of sections) {
    out.push(section === "top level" ? "## Top level" : `## \`${section}\``, "");
    const head = list[0];
    if (head?.path === section && head.description) out.push(head.description, "");
    out.push("| key | type | default | description | when invalid |", "|---|---|---|---|---|");
    for (const row of list) {
      const defaults =
        row.defaults.system === row.defaults.user
          ? row.required
            ? "required"
            : code(row.defaults.system)
          : `system: ${code(row.defaults.system)}<br>user: ${code(row.defaults.user)}`;
      const description = row.when ? `(with \`${row.when}\`) ${row.description}` : row.description;
      out.push(
        `| \`${row.path}\` | ${row.type} | ${defaults} | ${cell(description)} | ${cell(
          row.messages.join("; "),
        )} |`,
      );
    }
    out.push("");
  }
  return `${out.join("\n").trimEnd()}\n`;
}
