#!/usr/bin/env bash
# Build the four service images with podman from the real Dockerfile, on the stand-in base.
# Usage: scripts/podman-images.sh [SERVICE...]   (default: all four)
set -euo pipefail
. "$(dirname "$0")/podman-env.sh"
bash "$REPO_ROOT/scripts/podman-base.sh"

BUILD_ARGS=(--runtime runc --network host --build-arg "BASE_IMAGE=$BASE_IMAGE_NAME")
CA_BUNDLE="${PIP_CERT:-${SSL_CERT_FILE:-}}"
if [ -n "$CA_BUNDLE" ] && [ -f "$CA_BUNDLE" ]; then
    # registries reached through an intercepting proxy: trust its CA inside the build too
    BUILD_ARGS+=(--volume "$(readlink -f "$CA_BUNDLE"):/etc/ssl/certs/ca-certificates.crt:ro")
fi

cd "$REPO_ROOT"
bash scripts/vendor-js.sh  # the gateway's image carries the page's tus-js-client from here
for service in ${*:-$SERVICES}; do
    image="$IMAGE_PREFIX$service:$IMAGE_TAG"
    echo "building $image"
    podman build "${BUILD_ARGS[@]}" --build-arg "SERVICE=$service" -t "$image" . \
        >"$PODMAN_STATE/build-$service.log" 2>&1 \
        || { tail -40 "$PODMAN_STATE/build-$service.log" >&2; echo "build of $image failed" >&2; exit 1; }
done
