import { readFileSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import * as v from "valibot";
import {
  type Document,
  isAlias,
  isCollection,
  isMap,
  isNode,
  isScalar,
  isSeq,
  LineCounter,
  parseDocument,
  visit,
  type Node as YamlNode,
} from "yaml";
import { ConfigSchema, ENV_OVERRIDABLE_KEYS, type PsiConfig } from "./config-schema.js";
import type { PsiContext } from "./contracts.js";
import { errorMessage, PsiError } from "./errors.js";
import type { Logger } from "./logger-types.js";
import { defaultPaths, type Env, type Scope, type ScopePaths, scopeForUid } from "./paths.js";

/** One problem found in a configuration file, with where it is. */
export interface ConfigProblem {
  /** The configuration file. */
  file: string;
  /** YAML path such as `workloads.myapp.secrets[0].project`; empty for the whole file. */
  path: string;
  /** 1-based position in the file; absent when the value came from the environment. */
  line?: number;
  column?: number;
  /** The `PSI_*` variable that set the value, when it did. */
  env?: string;
  /** What is wrong and what was expected. */
  message: string;
}

/** A `config.invalid` error: the message lists every problem, `problems` holds them too. */
export type ConfigError = PsiError & { readonly problems: readonly ConfigProblem[] };

/** The problems of a `config.invalid` error, or undefined for any other value. */
export function configProblems(error: unknown): readonly ConfigProblem[] | undefined {
  if (!(error instanceof PsiError) || error.code !== "config.invalid") return undefined;
  const problems = (error as Partial<ConfigError>).problems;
  return Array.isArray(problems) ? problems : undefined;
}

/** A problem as one line: `file:line:col: path: message`. */
export function formatConfigProblem(problem: ConfigProblem): string {
  const where =
    problem.env !== undefined
      ? `${problem.file}: ${problem.path} (set by ${problem.env})`
      : `${problem.file}:${problem.line ?? 1}:${problem.column ?? 1}${problem.path ? `: ${problem.path}` : ""}`;
  return `${where}: ${problem.message}`;
}

/** What {@link parseConfig} needs besides the text: the environment and who runs PSI. */
export interface ParseConfigOptions {
  env: Env;
  uid: number;
  /** Home directory for user-scope paths; default `$HOME`, then the OS's. */
  home?: string;
}

/** Options of {@link loadConfig}: an explicit path wins over `PSI_CONFIG` and the scope default. */
export interface LoadConfigOptions extends ParseConfigOptions {
  path?: string;
}

/** A validated configuration with its scope, resolved paths and the warnings found. */
export interface LoadedConfig {
  config: PsiConfig;
  scope: Scope;
  /** Scope defaults with `state_dir`/`systemd_dir` applied; `configDir` is the file's directory. */
  paths: ScopePaths;
  /** The configuration file read. */
  file: string;
  /** Unknown keys inside blocks and other things worth a log line (never printed here). */
  warnings: string[];
}

const MAX_LISTED = 50;
const MAPPING_EXPECTED = "expected a mapping";
const SECRET_KEYS = new Set(["client_secret", "client_id", "socket_token", "pin"]);
const TOP_LEVEL_KEYS = Object.keys(ConfigSchema.entries);

/** The configuration file to read: explicit path, then `PSI_CONFIG`, then the scope default. */
export function configPath(options: LoadConfigOptions): string {
  if (options.path !== undefined && options.path !== "") return resolve(options.path);
  const fromEnv = options.env["PSI_CONFIG"];
  if (fromEnv !== undefined && fromEnv !== "") return resolve(fromEnv);
  return defaultPaths(scopeForUid(options.uid), options.env, options.uid, options.home).config;
}

const EXAMPLE = `providers:
  infisical:
    auth: { method: universal-auth, client_id: <client id>, client_secret: <client secret> }
    projects:
      myproject: { id: <project id>, environment: prod }
workloads:
  myapp:
    secrets:
      - { project: myproject, path: /myapp }`;

/** Reads and validates the configuration file (SPEC §2); throws `config.missing` or `config.invalid`. */
export async function loadConfig(options: LoadConfigOptions): Promise<LoadedConfig> {
  const file = configPath(options);
  let text: string;
  try {
    // One small file, read at start-up before anything else runs: without the thread pool
    // (and node:fs/promises), which `psi cache status` then never starts.
    text = readFileSync(file, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") {
      const createDir = `mkdir -p ${dirname(file)}`;
      throw new PsiError("config.missing", `no configuration file at ${file}`, {
        cause: error,
        hint:
          `create it (an empty file is valid; --config or PSI_CONFIG point elsewhere), for example:\n` +
          `${createDir} && cat > ${file} <<'EOF'\n${EXAMPLE}\nEOF`,
      });
    }
    throw new PsiError(
      "config.unreadable",
      `cannot read the configuration file ${file}: ${errorMessage(error)}`,
      {
        cause: error,
        hint: code === "EACCES" ? `check the permissions of ${file}` : undefined,
      },
    );
  }
  const loaded = parseConfig(text, file, options);
  const exposed = exposedCredentials(file, text);
  return exposed === undefined ? loaded : { ...loaded, warnings: [...loaded.warnings, exposed] };
}

/** Keys whose values are credentials, as `key: value` in block or flow style (quoted or not). */
const CREDENTIAL_KEYS =
  /(?:^|[\s{,])["']?(client_secret|pin|socket_token)["']?\s*:[ \t]*(?!null\b|~|""|''|Null\b|NULL\b)[^\s#,}]/gm;

/**
 * A warning when the file holds credentials and others may read it (issue 9): names the
 * keys and the chmod that fixes it. Never fails the load: the mode is advice, not validity.
 */
function exposedCredentials(file: string, text: string): string | undefined {
  const keys = [...new Set([...text.matchAll(CREDENTIAL_KEYS)].map((match) => match[1]!))];
  if (keys.length === 0) return undefined;
  let mode: number;
  try {
    mode = statSync(file).mode & 0o777;
  } catch {
    return undefined;
  }
  if ((mode & 0o077) === 0) return undefined;
  return (
    `${file} holds credentials (${keys.sort().join(", ")}) and is accessible to group or others ` +
    `(mode ${mode.toString(8).padStart(4, "0")}): run chmod 600 ${file}`
  );
}

type Segment = string | number;
type PlainObject = Record<string, unknown>;

function isPlainObject(value: unknown): value is PlainObject {
  if (typeof value !== "object" || value === null) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** `workloads.myapp.secrets[0].project`; keys that would be ambiguous are bracketed. */
export function formatYamlPath(segments: readonly Segment[]): string {
  let out = "";
  for (const segment of segments) {
    if (typeof segment === "number") out += `[${segment}]`;
    else if (/^[A-Za-z0-9_@:-]+$/.test(segment)) out += out === "" ? segment : `.${segment}`;
    else out += `[${JSON.stringify(segment)}]`;
  }
  return out;
}

/** Edit distance (insert, delete, substitute), for "the closest known key". */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      current[j] = Math.min(
        (previous[j] as number) + 1,
        (current[j - 1] as number) + 1,
        (previous[j - 1] as number) + cost,
      );
    }
    previous = current;
  }
  return previous[b.length] as number;
}

function closest(key: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const candidate of known) {
    const distance = editDistance(key.toLowerCase(), candidate.toLowerCase());
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

/** What a value is, for "got ..." (values of secret keys are never shown). */
function describe(value: unknown, secret: boolean): string {
  if (value === undefined) return "nothing";
  if (value === null) return "an empty value";
  if (typeof value === "string") {
    if (value === "") return "an empty string";
    if (secret) return "a string";
    return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value);
  }
  if (typeof value === "number" || typeof value === "boolean")
    return secret ? `a ${typeof value}` : String(value);
  if (Array.isArray(value)) return "a list";
  if (isPlainObject(value) || value instanceof Map) return "a mapping";
  if (value instanceof Date) return "a date";
  if (value instanceof Uint8Array) return "binary data";
  if (value instanceof Set) return "a set";
  return `a ${typeof value}`;
}

interface Position {
  line: number;
  column: number;
}

/** Finds YAML nodes by path in the parsed document, to report line:column. */
function makeLocator(doc: Document, lineCounter: LineCounter) {
  const at = (node: YamlNode | null | undefined): Position | undefined => {
    const offset = node?.range?.[0];
    if (offset === undefined) return undefined;
    const { line, col } = lineCounter.linePos(offset);
    return { line, column: col };
  };

  const walk = (segments: readonly Segment[]) => {
    let node: YamlNode | null = isNode(doc.contents) ? doc.contents : null;
    let keyNode: YamlNode | null = null;
    let complete = true;
    for (const segment of segments) {
      if (isAlias(node)) node = (node.resolve(doc) as YamlNode | undefined) ?? null;
      if (isMap(node)) {
        let found: { key: unknown; value: unknown } | undefined;
        // The last pair wins, as when the document becomes data.
        for (const pair of node.items) {
          const key = isScalar(pair.key) ? pair.key.value : pair.key;
          if (String(key) === String(segment)) found = pair;
        }
        if (found === undefined) {
          complete = false;
          break;
        }
        keyNode = isNode(found.key) ? found.key : null;
        node = isNode(found.value) ? found.value : null;
      } else if (isSeq(node) && typeof segment === "number" && isNode(node.items[segment])) {
        keyNode = null;
        node = node.items[segment] as YamlNode;
      } else {
        complete = false;
        break;
      }
    }
    return { node, keyNode, complete };
  };

  const start: Position = { line: 1, column: 1 };
  return {
    /** Where the value at `segments` is (its key when the value is empty). */
    value(segments: readonly Segment[]): Position {
      const { node, keyNode, complete } = walk(segments);
      const hasValue = isCollection(node) || (isScalar(node) && node.value !== null);
      if (complete && hasValue) return at(node) ?? at(keyNode) ?? start;
      return at(keyNode) ?? at(node) ?? start;
    },
    /** Where the key of the entry at `segments` is (the item itself in a list). */
    key(segments: readonly Segment[]): Position {
      const { node, keyNode } = walk(segments);
      return at(keyNode) ?? at(node) ?? start;
    },
  };
}

interface SchemaLike {
  type: string;
  wrapped?: SchemaLike;
  entries?: Record<string, SchemaLike>;
  value?: SchemaLike;
  item?: SchemaLike;
  key?: unknown;
  options?: SchemaLike[];
  literal?: unknown;
}

function unwrap(schema: SchemaLike): SchemaLike {
  let current = schema;
  while (current.wrapped !== undefined) current = current.wrapped;
  return current;
}

interface Inspection {
  /** Keys the schema does not know, inside blocks (the reference ignores them: warnings). */
  unknown: { path: Segment[]; key: string; known: string[] }[];
  /**
   * Lists, dates, binary data where a mapping belongs: valibot takes any JS object for an
   * object schema, and YAML gives arrays, Date (`!!timestamp`) and Uint8Array (`!!binary`).
   */
  notMappings: { path: Segment[]; value: unknown }[];
}

/** Walks the data along the schema for what valibot does not report. */
function inspect(schema: SchemaLike, value: unknown, path: Segment[], found: Inspection): void {
  const s = unwrap(schema);
  const wantsMapping =
    s.type === "object" ||
    s.type === "strict_object" ||
    s.type === "record" ||
    s.type === "variant";
  if (wantsMapping && typeof value === "object" && value !== null && !isPlainObject(value)) {
    found.notMappings.push({ path, value });
  } else if (
    (s.type === "object" || s.type === "strict_object") &&
    s.entries &&
    isPlainObject(value)
  ) {
    const entries = s.entries;
    for (const key of Object.keys(value)) {
      const entry = Object.hasOwn(entries, key) ? entries[key] : undefined;
      if (entry !== undefined) inspect(entry, value[key], [...path, key], found);
      else if (path.length > 0) found.unknown.push({ path, key, known: Object.keys(entries) });
    }
  } else if (s.type === "record" && s.value && isPlainObject(value)) {
    for (const key of Object.keys(value)) inspect(s.value, value[key], [...path, key], found);
  } else if (s.type === "array" && s.item && Array.isArray(value)) {
    value.forEach((item, index) => {
      if (s.item) inspect(s.item, item, [...path, index], found);
    });
  } else if (
    s.type === "variant" &&
    s.options &&
    isPlainObject(value) &&
    typeof s.key === "string"
  ) {
    const discriminator = value[s.key];
    const option = s.options.find((o) => o.entries?.[s.key as string]?.literal === discriminator);
    if (option) inspect(option, value, path, found);
  }
}

function startsWith(segments: readonly Segment[], prefix: readonly Segment[]): boolean {
  return (
    prefix.length <= segments.length &&
    prefix.every((segment, i) => String(segments[i]) === String(segment))
  );
}

/** Problems that need more than one key: auth per project, projects and providers named by workloads. */
function crossCheck(
  raw: PlainObject,
): { segments: Segment[]; at: "key" | "value"; message: string }[] {
  const out: { segments: Segment[]; at: "key" | "value"; message: string }[] = [];
  const providers = isPlainObject(raw["providers"]) ? raw["providers"] : {};
  const configuredProviders = Object.keys(providers);
  const infisical = isPlainObject(providers["infisical"]) ? providers["infisical"] : {};
  const projects = isPlainObject(infisical["projects"]) ? infisical["projects"] : {};
  const projectNames = Object.keys(projects);
  const globalAuth = infisical["auth"] !== undefined && infisical["auth"] !== null;

  for (const [name, project] of Object.entries(projects)) {
    if (!isPlainObject(project) || globalAuth) continue;
    if (project["auth"] === undefined || project["auth"] === null) {
      out.push({
        segments: ["providers", "infisical", "projects", name],
        at: "key",
        message:
          "project has no auth: add auth: {method: ...} to the project or a global providers.infisical.auth",
      });
    }
  }

  const list = (names: string[]) => (names.length === 0 ? "none" : names.join(", "));
  const workloads = isPlainObject(raw["workloads"]) ? raw["workloads"] : {};
  for (const [name, workload] of Object.entries(workloads)) {
    if (!isPlainObject(workload)) continue;
    const explicit = workload["provider"] !== undefined && workload["provider"] !== null;
    const provider = explicit ? workload["provider"] : "infisical";
    if (
      typeof provider === "string" &&
      provider !== "" &&
      !configuredProviders.includes(provider)
    ) {
      out.push(
        explicit
          ? {
              segments: ["workloads", name, "provider"],
              at: "value",
              message: `provider "${provider}" is not configured under providers (configured: ${list(configuredProviders)})`,
            }
          : {
              segments: ["workloads", name],
              at: "key",
              message: `provider "infisical" (the default) is not configured under providers (configured: ${list(configuredProviders)})`,
            },
      );
    }
    const sources = workload["secrets"];
    if (!Array.isArray(sources)) continue;
    sources.forEach((source, index) => {
      if (!isPlainObject(source)) return;
      const project = source["project"];
      if (typeof project === "string" && project !== "" && !Object.hasOwn(projects, project)) {
        out.push({
          segments: ["workloads", name, "secrets", index, "project"],
          at: "value",
          message: `project "${project}" is not configured under providers.infisical.projects (configured: ${list(projectNames)})`,
        });
      }
    });
  }
  return out;
}

function invalid(file: string, problems: ConfigProblem[]): ConfigError {
  const lines = problems.slice(0, MAX_LISTED).map((p) => `  ${formatConfigProblem(p)}`);
  if (problems.length > MAX_LISTED) lines.push(`  ... and ${problems.length - MAX_LISTED} more`);
  const count = problems.length === 1 ? "1 problem" : `${problems.length} problems`;
  const error = new PsiError(
    "config.invalid",
    `invalid configuration ${file} (${count}):\n${lines.join("\n")}`,
    {
      hint: "fix the keys listed above (every key is described in docs/configuration.md)",
    },
  );
  return Object.assign(error, { problems: Object.freeze(problems) });
}

/**
 * Validates configuration text (pure: no file system). Throws one `config.invalid` PsiError
 * listing every problem; returns the config with warnings for keys the reference ignores.
 */
export function parseConfig(text: string, file: string, options: ParseConfigOptions): LoadedConfig {
  try {
    return parseConfigText(text, file, options);
  } catch (error) {
    if (error instanceof PsiError) throw error;
    // The YAML library refuses alias bombs and overly deep documents by throwing.
    throw invalid(file, [
      {
        file,
        path: "",
        line: 1,
        column: 1,
        message: `cannot read the YAML: ${errorMessage(error)}`,
      },
    ]);
  }
}

function parseConfigText(text: string, file: string, options: ParseConfigOptions): LoadedConfig {
  const lineCounter = new LineCounter();
  // YAML 1.1, as PyYAML (the reference) reads it: yes/no booleans, 0640 octal, << merges.
  const doc = parseDocument(text, {
    version: "1.1",
    lineCounter,
    prettyErrors: false,
    uniqueKeys: false,
  });
  const position = (offset: number | undefined): Position => {
    const { line, col } = lineCounter.linePos(offset ?? 0);
    return { line, column: col };
  };
  const warnings: { position: Position; text: string }[] = [];
  const warn = (where: Position, path: string, message: string) =>
    warnings.push({
      position: where,
      text: formatConfigProblem({ file, path, ...where, message }),
    });

  if (doc.errors.length > 0) {
    throw invalid(
      file,
      doc.errors.map((e) => ({
        file,
        path: "",
        ...position(e.pos[0]),
        message: `YAML syntax error: ${e.message}`,
      })),
    );
  }
  for (const w of doc.warnings) warn(position(w.pos[0]), "", `YAML: ${w.message}`);
  visit(doc, {
    Map(_, map) {
      const seen = new Set<string>();
      for (const pair of map.items) {
        const key = String(isScalar(pair.key) ? pair.key.value : pair.key);
        if (seen.has(key) && isNode(pair.key)) {
          warn(
            position(pair.key.range?.[0]),
            "",
            `duplicate key "${key}": the last one wins (as in the reference)`,
          );
        }
        seen.add(key);
      }
    },
  });

  const data: unknown = doc.toJS({ maxAliasCount: 100 });
  const locate = makeLocator(doc, lineCounter);
  const problems: (ConfigProblem & { order: number })[] = [];
  const problem = (
    segments: readonly Segment[],
    at: "key" | "value",
    message: string,
    env?: string,
    path = formatYamlPath(segments),
  ) => {
    const base = { file, path, message, order: problems.length };
    if (env !== undefined) problems.push({ ...base, env });
    else
      problems.push({ ...base, ...(at === "key" ? locate.key(segments) : locate.value(segments)) });
  };

  const raw: unknown = data === null || data === undefined ? {} : data;
  const envSources = new Map<string, string>();
  if (isPlainObject(raw)) {
    for (const key of ENV_OVERRIDABLE_KEYS) {
      const name = `PSI_${key.toUpperCase()}`;
      const value = options.env[name];
      if (value !== undefined && value !== "") {
        raw[key] = value;
        envSources.set(key, name);
      }
    }
    for (const key of Object.keys(raw)) {
      if (TOP_LEVEL_KEYS.includes(key)) continue;
      problem(
        [key],
        "key",
        `unknown top-level key "${key}"; the closest known key is "${closest(key, TOP_LEVEL_KEYS)}" (top-level keys: ${TOP_LEVEL_KEYS.join(", ")})`,
        undefined,
        "",
      );
    }
  }

  const found: Inspection = { unknown: [], notMappings: [] };
  inspect(ConfigSchema as unknown as SchemaLike, raw, [], found);
  for (const { path, value } of found.notMappings) {
    const got = describe(value, false);
    const message =
      path.length === 0
        ? `expected a mapping of the top-level keys (${TOP_LEVEL_KEYS.join(", ")}), got ${got}`
        : `${MAPPING_EXPECTED}, got ${got}`;
    problem(path, "value", message);
  }

  const result = v.safeParse(ConfigSchema, raw, { abortEarly: false });
  for (const issue of result.issues ?? []) {
    // Unknown top-level keys are reported above, all of them (the schema stops at the first).
    if (issue.type === "strict_object" && issue.expected === "never") continue;
    const items = issue.path ?? [];
    const segments = items.map((item) =>
      typeof item.key === "number" ? item.key : String(item.key),
    );
    if (found.notMappings.some(({ path }) => startsWith(segments, path))) continue;
    const last = items[items.length - 1];
    const lastKey = segments[segments.length - 1];
    const env = segments.length > 0 ? envSources.get(String(segments[0])) : undefined;
    if (
      last !== undefined &&
      issue.input === undefined &&
      isPlainObject(last.input) &&
      !Object.hasOwn(last.input, String(last.key))
    ) {
      const extra = issue.type === "variant" ? ` (${issue.message})` : "";
      problem(segments.slice(0, -1), "key", `missing required key "${String(last.key)}"${extra}`);
      continue;
    }
    const secret = typeof lastKey === "string" && SECRET_KEYS.has(lastKey);
    const message =
      segments.length === 0
        ? `expected a mapping of the top-level keys (${TOP_LEVEL_KEYS.join(", ")}), got ${describe(issue.input, false)}`
        : `${issue.message}, got ${describe(issue.input, secret)}`;
    // A bad name in a record (`workloads: {"a/b": ...}`) is reported at the name.
    problem(segments, last?.origin === "key" ? "key" : "value", message, env);
  }

  if (isPlainObject(raw)) {
    for (const check of crossCheck(raw)) problem(check.segments, check.at, check.message);
    for (const { path, key, known } of found.unknown) {
      const hint =
        known.length === 0
          ? `${formatYamlPath(path)} takes no keys`
          : `the closest known key is "${closest(key, known)}"`;
      warn(
        locate.key([...path, key]),
        formatYamlPath(path),
        `unknown key "${key}" is ignored; ${hint}`,
      );
    }
  }

  if (problems.length > 0 || !result.success) {
    const rank = (p: ConfigProblem) =>
      p.env !== undefined ? Number.MAX_SAFE_INTEGER : (p.line ?? 0);
    problems.sort(
      (a, b) => rank(a) - rank(b) || (a.column ?? 0) - (b.column ?? 0) || a.order - b.order,
    );
    throw invalid(
      file,
      problems.map(({ order: _, ...p }) => p),
    );
  }

  warnings.sort(
    (a, b) => a.position.line - b.position.line || a.position.column - b.position.column,
  );
  const config = result.output;
  const scope = config.scope ?? scopeForUid(options.uid);
  const defaults = defaultPaths(scope, options.env, options.uid, options.home);
  const paths: ScopePaths = {
    ...defaults,
    config: file,
    configDir: dirname(file),
    stateDir: config.state_dir ?? defaults.stateDir,
    systemdDir: config.systemd_dir ?? defaults.systemdDir,
  };
  return { config, scope, paths, file, warnings: warnings.map((w) => w.text) };
}

/** `cache.path`, or `<state_dir>/cache.enc` (SPEC §6.5), of a loaded configuration or a context. */
export function cachePath(loaded: Pick<LoadedConfig, "config" | "paths">): string {
  return loaded.config.cache?.path ?? join(loaded.paths.stateDir, "cache.enc");
}

/** `cache.key_file`, or `<config_dir>/cache.keyfile` (SPEC §7, keyfile backend). */
export function keyFilePath(loaded: LoadedConfig): string {
  return loaded.config.cache?.key_file ?? join(loaded.paths.configDir, "cache.keyfile");
}

/** `<config_dir>/cache.key`: the systemd-creds sealed key of the tpm backend (SPEC §7). */
export function tpmKeyPath(loaded: LoadedConfig): string {
  return join(loaded.paths.configDir, "cache.key");
}

/** The context providers and cache backends are built from. */
export function makeContext(loaded: LoadedConfig, io: { logger: Logger; env: Env }): PsiContext {
  return {
    config: loaded.config,
    scope: loaded.scope,
    paths: loaded.paths,
    logger: io.logger,
    env: io.env,
  };
}
