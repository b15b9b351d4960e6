#!/usr/bin/env bash
# Build (once) a Debian bookworm stand-in for python:3.11-slim and import it into podman.
# The rootfs tarball is cached under /var/tmp, keyed by the debootstrap command line.
set -euo pipefail
. "$(dirname "$0")/podman-env.sh"
ensure_podman_tools

SUITE=bookworm
PACKAGES=python3,python3-venv,python3-pip,ca-certificates
KEY="$(printf '%s %s minbase v1' "$SUITE" "$PACKAGES" | sha256sum | cut -c1-12)"
CACHE_DIR="${BASE_CACHE_DIR:-/var/tmp/mp3converter-base}"
TARBALL="$CACHE_DIR/rootfs-$KEY.tar"
STAMP="$PODMAN_STATE/base-$KEY.stamp"

if [ -f "$STAMP" ] && podman_ image exists "$BASE_IMAGE_NAME"; then
    echo "base image $BASE_IMAGE_NAME is current ($KEY)"
    exit 0
fi

mkdir -p "$CACHE_DIR"
if [ ! -s "$TARBALL" ]; then
    ROOTFS="$(mktemp -d "$CACHE_DIR/rootfs.XXXXXX")"
    trap 'rm -rf "$ROOTFS"' EXIT
    echo "debootstrap $SUITE into $ROOTFS"
    debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOTFS" >"$CACHE_DIR/debootstrap.log" 2>&1 \
        || { tail -30 "$CACHE_DIR/debootstrap.log" >&2; exit 1; }
    rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
    tar -C "$ROOTFS" -cf "$TARBALL.part" .
    mv "$TARBALL.part" "$TARBALL"
fi

podman_ import "$TARBALL" "$BASE_IMAGE_NAME" >/dev/null
touch "$STAMP"
echo "imported $BASE_IMAGE_NAME from $TARBALL"
