import type { Command, Option } from "commander";

// What `--help`, `psi completion` and docs/cli.md say about each command, all from the one
// command tree: an example and the environment variables the command reads. A command
// missing here fails the reference test, so a new command cannot ship without them.

/** Environment every command reads. */
export const GLOBAL_ENV: Record<string, string> = {
  PSI_CONFIG: "configuration file (as --config)",
  PSI_LOG_LEVEL: "log level (as --log-level; the Python psi's names such as WARNING too)",
  PSI_LOG_JSON: "1/true: JSON log lines even on a terminal (as --log-json)",
  JOURNAL_STREAM: "set by systemd: log lines on the journal carry syslog priorities (<3>..<7>)",
};

const SCOPE = "XDG_RUNTIME_DIR";
const PODMAN = "PSI_PODMAN_SOCKET";
const SOCKET = "PSI_SOCKET";
const TOKEN = "PSI_SOCKET_TOKEN";
const CREDENTIALS = "CREDENTIALS_DIRECTORY";
const PIN = "PSI_NITROKEYHSM_PIN";
const AWS = "AWS_ACCESS_KEY_ID";

/** What each variable a command reads means (the commands below list the ones they read). */
const ENV: Record<string, string> = {
  [SCOPE]: "user scope: where the socket and Podman's socket live",
  [PODMAN]: "Podman API socket (as --podman-socket)",
  [SOCKET]: "PSI's lookup socket (as --socket)",
  [TOKEN]:
    "bearer token of the socket (after $CREDENTIALS_DIRECTORY/psi-socket-token and socket_token)",
  [CREDENTIALS]: "systemd credentials: psi-cache-key (tpm), hsm-pin, psi-socket-token",
  [PIN]: "HSM user PIN (after $CREDENTIALS_DIRECTORY/hsm-pin and providers.nitrokeyhsm.pin)",
  [AWS]: "aws-iam auth: AWS credentials (and the other standard AWS_* variables)",
  LISTEN_FDS: "socket activation (with LISTEN_PID)",
  SECRET_ID: "the Podman secret ID (set by Podman)",
  CONTAINERS_STORAGE_CONF:
    "read by the podman build it runs (and the other containers-* variables)",
};

/** Per command path (`cache init`, `infisical tls status`): one example and the variables it reads. */
export const COMMAND_REFERENCE: Record<string, { example: string; env?: string[] }> = {
  serve: {
    example: "psi serve --socket /run/psi/psi.sock",
    env: [SOCKET, TOKEN, CREDENTIALS, PIN, SCOPE, "LISTEN_FDS"],
  },
  setup: {
    example: "psi setup --provider infisical --dry-run",
    env: [PODMAN, SOCKET, TOKEN, CREDENTIALS, PIN, AWS, SCOPE],
  },
  "cache init": { example: "psi cache init --backend tpm --tpm2-device /dev/tpmrm0", env: [PIN] },
  "cache status": { example: "psi cache status --verify", env: [CREDENTIALS, PIN] },
  "cache refresh": {
    example: "psi cache refresh",
    env: [PODMAN, SOCKET, CREDENTIALS, PIN, AWS, SCOPE],
  },
  "cache invalidate": {
    example: "psi cache invalidate web--DB_PASSWORD",
    env: [PODMAN, CREDENTIALS, PIN, SCOPE],
  },
  install: {
    example: "psi install --socket /run/psi/psi.sock",
    env: [SOCKET, TOKEN, CREDENTIALS, SCOPE],
  },
  "secret store": { example: "SECRET_ID=<id> psi secret store < mapping.json", env: ["SECRET_ID"] },
  "secret lookup": {
    example: "SECRET_ID=<id> psi secret lookup --log-level debug",
    env: ["SECRET_ID", CREDENTIALS, PIN, AWS],
  },
  "secret delete": { example: "SECRET_ID=<id> psi secret delete", env: ["SECRET_ID"] },
  "secret list": { example: "psi secret list" },
  "local store": {
    example: 'printf %s "$VALUE" | psi local store vault--ROOT_TOKEN',
    env: [PODMAN, CREDENTIALS, PIN, SCOPE],
  },
  "systemd install": {
    example: "psi systemd install --mode container --image ghcr.io/example/psi:1 --enable",
    env: [SOCKET, SCOPE],
  },
  demo: { example: "psi demo --once" },
  "nitrokeyhsm preflight": { example: "psi nitrokeyhsm preflight", env: [CREDENTIALS, PIN] },
  "nitrokeyhsm init": { example: "psi nitrokeyhsm init", env: [CREDENTIALS, PIN] },
  "nitrokeyhsm store": {
    example: 'printf %s "$VALUE" | psi nitrokeyhsm store infisical--CLIENT_SECRET',
    env: [PODMAN, SCOPE],
  },
  "nitrokeyhsm status": { example: "psi nitrokeyhsm status --offline", env: [CREDENTIALS, PIN] },
  "nitrokeyhsm test-pin": {
    example: "PSI_NITROKEYHSM_PIN=123456 psi nitrokeyhsm test-pin",
    env: [CREDENTIALS, PIN],
  },
  "nitrokeyhsm setup-pcscd": {
    example:
      "psi nitrokeyhsm setup-pcscd --build-dir /opt/psi/pcscd --systemd-dir /etc/containers/systemd",
    env: ["CONTAINERS_STORAGE_CONF"],
  },
  "infisical login": { example: "psi infisical login", env: [AWS] },
  "infisical env": {
    example: "psi infisical env --project shop --path /web --format env > /run/web/env",
    env: [AWS],
  },
  "infisical write-file": {
    example:
      "psi infisical write-file TLS_KEY /etc/web/key.pem --project shop --path /web --mode 0640",
    env: [AWS],
  },
  "infisical import env-file": {
    example: "psi infisical import env-file .env --project shop --path /web --dry-run",
    env: [AWS],
  },
  "infisical import podman-secret": {
    example: "psi infisical import podman-secret --all --project shop --path /web --conflict skip",
    env: [PODMAN, AWS, CREDENTIALS, PIN, SCOPE],
  },
  "infisical import quadlet": {
    example:
      "psi infisical import quadlet /etc/containers/systemd/web.container --project shop --path /web --resolve-secrets",
    env: [PODMAN, AWS, CREDENTIALS, PIN, SCOPE],
  },
  "infisical tls issue": { example: "psi infisical tls issue web", env: [AWS] },
  "infisical tls renew": { example: "psi infisical tls renew", env: [AWS] },
  "infisical tls status": {
    example: "psi infisical tls status --timer psi-tls-renew.timer",
    env: [AWS],
  },
  status: { example: "psi status --json", env: [SOCKET, PODMAN, TOKEN, CREDENTIALS, SCOPE] },
  completion: { example: "psi completion bash > /etc/bash_completion.d/psi" },
};

/** The variables a command reads with what they mean, in the order it lists them. */
function commandEnv(path: string): [string, string][] {
  return (COMMAND_REFERENCE[path]?.env ?? []).map((name) => [name, ENV[name] ?? ""]);
}

/** `cache init` for the command `psi cache init`. */
export function commandPath(command: Command): string {
  const names: string[] = [];
  for (let at: Command | null = command; at?.parent; at = at.parent) names.unshift(at.name());
  return names.join(" ");
}

function visibleCommands(command: Command): Command[] {
  return command.commands.filter((child) => !(child as Command & { _hidden?: boolean })._hidden);
}

/** Every command that runs something (no subcommands), depth first, in definition order. */
export function leafCommands(program: Command): Command[] {
  const out: Command[] = [];
  const walk = (command: Command) => {
    for (const child of visibleCommands(command)) {
      if (child.commands.length > 0) walk(child);
      else out.push(child);
    }
  };
  walk(program);
  return out;
}

function envLines(env: [string, string][]): string[] {
  const width = Math.max(...env.map(([name]) => name.length));
  return env.map(([name, text]) => `  ${name.padEnd(width)}  ${text}`);
}

/** Adds "Example:" and "Environment:" to each command's --help. */
export function addReferenceHelp(program: Command): void {
  for (const command of leafCommands(program)) {
    const path = commandPath(command);
    const entry = COMMAND_REFERENCE[path];
    if (!entry) continue;
    const env = [...commandEnv(path), ...Object.entries(GLOBAL_ENV)];
    command.addHelpText(
      "after",
      ["", "Example:", `  ${entry.example}`, "", "Environment:", ...envLines(env)].join("\n"),
    );
  }
}

function visibleOptions(command: Command): Option[] {
  return command.options.filter((option) => !option.hidden);
}

/** docs/cli.md: every command, argument, option and environment variable, from the tree. */
export function renderCliMarkdown(program: Command): string {
  const lines: string[] = [
    "# psi command reference",
    "",
    "<!-- Generated from the command definitions by `pnpm --filter @psi/cli cli-docs`; do not edit. -->",
    "",
    program.description(),
    "",
    "## Global options",
    "",
    ...visibleOptions(program).map((option) => `- \`${option.flags}\`: ${option.description}`),
    "",
    "Environment read by every command:",
    "",
    ...Object.entries(GLOBAL_ENV).map(([name, text]) => `- \`${name}\`: ${text}`),
    "",
    "Exit codes: 0 success, 1 a user-facing error (one message; `--debug` adds the stack),",
    "2 a usage error.",
    "",
    "JSON: every `--json` output uses snake_case keys, as the log lines do. The report",
    "commands (`status`, `setup` and `setup --dry-run`, `cache status`, `cache refresh`,",
    "`infisical login`, `infisical import ...`, `infisical tls status`, `nitrokeyhsm status`,",
    "`nitrokeyhsm preflight`) print JSON whenever stdout is not a terminal; every other",
    "command prints JSON only with `--json`.",
    "",
  ];
  for (const command of leafCommands(program)) {
    const path = commandPath(command);
    const entry = COMMAND_REFERENCE[path];
    const args = command.registeredArguments
      .map((argument) => {
        const name = `${argument.name()}${argument.variadic ? "..." : ""}`;
        return argument.required ? `<${name}>` : `[${name}]`;
      })
      .join(" ");
    lines.push(`## psi ${path}${args ? ` ${args}` : ""}`, "", command.description(), "");
    const options = visibleOptions(command);
    if (options.length > 0) {
      for (const option of options) {
        let text = `- \`${option.flags}\`: ${option.description}`;
        if (option.argChoices) text += ` (one of: ${option.argChoices.join(", ")})`;
        if (option.defaultValue !== undefined && typeof option.defaultValue !== "boolean")
          text += ` (default: \`${String(option.defaultValue)}\`)`;
        lines.push(text);
      }
      lines.push("");
    }
    if (entry) {
      lines.push("Example:", "", "```sh", entry.example, "```", "");
      const env = commandEnv(path);
      if (env.length > 0) {
        lines.push(
          "Environment (besides the global ones):",
          "",
          ...env.map(([name, text]) => `- \`${name}\`: ${text}`),
          "",
        );
      }
    }
  }
  return `${lines.join("\n").trimEnd()}\n`;
}

interface Node {
  path: string;
  subcommands: string[];
  flags: string[];
  /** Flags that take a value, with their choices when they have some. */
  values: Record<string, string[]>;
}

function nodes(program: Command): Node[] {
  const out: Node[] = [];
  const walk = (command: Command, path: string) => {
    const flags: string[] = [];
    const values: Record<string, string[]> = {};
    for (const option of visibleOptions(command)) {
      for (const flag of [option.short, option.long].filter(Boolean) as string[]) {
        flags.push(flag);
        if (option.required || option.optional) values[flag] = option.argChoices ?? [];
      }
    }
    const children = visibleCommands(command);
    out.push({ path, subcommands: children.map((child) => child.name()), flags, values });
    for (const child of children) walk(child, path ? `${path} ${child.name()}` : child.name());
  };
  walk(program, "");
  return out;
}

/** A completion script for bash, zsh or fish: subcommands, flags and flag choices. */
export function renderCompletion(program: Command, shell: "bash" | "zsh" | "fish"): string {
  const tree = nodes(program);
  const global = tree.find((node) => node.path === "")!;
  if (shell === "fish") {
    const flagLine = (flag: string, choices: string[] | undefined, where: string) => {
      const line = `complete -c psi${where} ${flag.startsWith("--") ? "-l" : "-s"} ${flag.replace(/^-+/, "")}`;
      if (choices === undefined) return line;
      return choices.length > 0 ? `${line} -x -a '${choices.join(" ")}'` : `${line} -r -F`;
    };
    const lines = ["# fish completion for psi (psi completion fish)", "complete -c psi -f"];
    for (const node of tree) {
      const words = node.path ? node.path.split(" ") : [];
      const condition =
        words.length === 0 ? "__fish_use_subcommand" : `__psi_path_is ${words.join(" ")}`;
      for (const sub of node.subcommands) lines.push(`complete -c psi -n '${condition}' -a ${sub}`);
      for (const flag of node === global ? [] : node.flags)
        lines.push(flagLine(flag, node.values[flag], ` -n '${condition}'`));
    }
    for (const flag of global.flags) lines.push(flagLine(flag, global.values[flag], ""));
    lines.push(
      "function __psi_path_is",
      "  set -l words (commandline -opc)",
      "  set -e words[1]",
      "  set -l path",
      "  for word in $words",
      "    string match -q -- '-*' $word; and continue",
      "    set path $path $word",
      "  end",
      "  test (string join ' ' -- $path) = (string join ' ' -- $argv)",
      "end",
      "",
    );
    return lines.join("\n");
  }
  // bash (zsh loads it through bashcompinit): the words that are not flags name the node.
  const cases = tree.map((node) => {
    const words = [...node.subcommands, ...node.flags, ...(node.path ? global.flags : [])];
    const valued = Object.entries({ ...global.values, ...node.values });
    const choices = valued
      .map(
        ([flag, list]) =>
          `      ${flag}) ${list.length > 0 ? `COMPREPLY=($(compgen -W "${list.join(" ")}" -- "$cur"))` : 'COMPREPLY=($(compgen -f -- "$cur"))'}; return ;;`,
      )
      .join("\n");
    return [
      `    "${node.path}")`,
      '      case "$prev" in',
      choices,
      "      esac",
      `      COMPREPLY=($(compgen -W "${words.join(" ")}" -- "$cur")) ;;`,
    ].join("\n");
  });
  const valueFlags = Object.keys(
    Object.assign({}, ...tree.map((node) => node.values)) as Record<string, string[]>,
  );
  const bash = [
    "# bash completion for psi (psi completion bash)",
    "_psi() {",
    // biome-ignore lint/suspicious/noTemplateCurlyInString: bash's ${...}, not a template
    '  local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}" path="" word i',
    "  for ((i = 1; i < COMP_CWORD; i++)); do",
    // biome-ignore lint/suspicious/noTemplateCurlyInString: bash's ${...}, not a template
    '    word="${COMP_WORDS[i]}"',
    '    case "$word" in',
    `      ${valueFlags.join("|")}) ((i++)); continue ;;`,
    "      -*) continue ;;",
    "    esac",
    // biome-ignore lint/suspicious/noTemplateCurlyInString: bash's ${...}, not a template
    '    path="${path:+$path }$word"',
    "  done",
    '  case "$path" in',
    ...cases,
    "  esac",
    "}",
    "complete -F _psi psi",
    "",
  ].join("\n");
  if (shell === "bash") return bash;
  return [
    "#compdef psi",
    "# zsh completion for psi (psi completion zsh)",
    "autoload -U +X bashcompinit && bashcompinit",
    bash,
  ].join("\n");
}
