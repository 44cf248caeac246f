#!/usr/bin/env bash
# Builds the root filesystem of the pcscd image from Debian's packages (no registry, no
# RUN steps): DIR/rootfs.tar holds pcscd (pcsc-lite) and libccid, the USB CCID driver the
# Nitrokey HSM speaks. `psi nitrokeyhsm setup-pcscd --build-dir DIR` then builds
# `FROM scratch` + `ADD rootfs.tar /` from it.
#
#   scripts/pcscd-rootfs.sh DIR [SUITE]      (root; Debian package mmdebstrap; about a minute)
set -euo pipefail

dir=${1:?usage: pcscd-rootfs.sh DIR [SUITE]}
suite=${2:-bookworm}
command -v mmdebstrap >/dev/null || {
  echo "pcscd-rootfs.sh: mmdebstrap is missing: apt-get install -y --no-install-recommends mmdebstrap" >&2
  exit 1
}
mkdir -p "$dir"
# pcscd puts its socket in /run/pcscd, where the quadlet mounts the shared volume (Podman
# creates the mount point). Docs and apt lists are dropped: the image only runs pcscd.
# The output name ends in .tar so mmdebstrap writes a tarball; renamed when complete.
mmdebstrap --quiet --variant=minbase --include=pcscd,libccid --mode=root \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/info/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
  --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
  "$suite" "$dir/.rootfs.part.tar"
mv "$dir/.rootfs.part.tar" "$dir/rootfs.tar"
echo "wrote $dir/rootfs.tar"
