#!/usr/bin/env bash
# Build docker/Dockerfile where no Docker engine runs and base images cannot be pulled: the base image
# is a Debian root file system made here with debootstrap and imported into podman (rootful, vfs
# storage, chroot isolation: no daemon, no overlay or user namespaces needed). Needs root and the
# Debian packages podman and debootstrap. From the repository's root:
#
#   bash docker/build-without-engine.sh [TAG]          (default voice-gateway:dev)
#
# PODMAN_CA=/path/to/ca-bundle.crt passes a CA bundle into the build for pip (a TLS-inspecting proxy
# between this machine and PyPI); by default the system's bundle is passed when it exists.
set -euo pipefail
cd "$(dirname "$0")/.."

tag="${1:-voice-gateway:dev}"
base="docker.io/library/debian:bookworm-slim"
podman=(podman --storage-driver vfs)

if ! "${podman[@]}" image exists "$base"; then
  rootfs="$(mktemp -d)"
  trap 'rm -rf "$rootfs"' EXIT
  echo "build-without-engine: debootstrap bookworm into $rootfs" >&2
  debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >&2
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | "${podman[@]}" import - "$base" >&2
fi

ca="${PODMAN_CA:-/etc/ssl/certs/ca-certificates.crt}"
ca_args=()
if [[ -f "$ca" ]]; then
  ca_args=(--volume "$ca:/build-ca.crt:ro" --build-arg PIP_CERT=/build-ca.crt)
fi
"${podman[@]}" build --isolation chroot --network host --format docker "${ca_args[@]}" \
  -f docker/Dockerfile -t "$tag" . >&2
echo "$tag"
