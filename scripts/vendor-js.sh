#!/usr/bin/env bash
# Vendors the page's one third-party script, tus-js-client's browser build (resumable uploads),
# into src/gateway/static/vendor/: fetched from the npm registry with `npm pack` (which checks
# the tarball against the registry's integrity hash), then checked against the SHA-256 pinned
# here. Run by scripts/bootstrap.sh and scripts/podman-images.sh (before `make images` too): the
# Dockerfile copies the result from the build context and runs this with VENDOR_JS_CHECK_ONLY=1,
# which only checks it (exit 1 when it is missing or is another file). No CDN at run time.
# Without npm it says so and exits 0: the page then uploads with POST /upload only.
set -euo pipefail
cd "$(dirname "$0")/.."

TUS_JS_CLIENT_VERSION=4.3.1
TUS_MIN_JS_SHA256=8cbb1b63fccc3bba0ae73ad1deb160ce046c3750851d0c3e94921ae3ef070eb8
DEST=${1:-src/gateway/static/vendor}

log() { echo "vendor-js: $*"; }

if [ -f "$DEST/tus.min.js" ] && echo "$TUS_MIN_JS_SHA256  $DEST/tus.min.js" | sha256sum -c --status; then
  exit 0
fi
if [ -n "${VENDOR_JS_CHECK_ONLY:-}" ]; then
  log "$DEST/tus.min.js is missing or is not tus-js-client $TUS_JS_CLIENT_VERSION" >&2
  exit 1
fi
if ! command -v npm >/dev/null; then
  log "npm not found: the page will upload with POST /upload only (no resumable uploads)" >&2
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
log "fetching tus-js-client $TUS_JS_CLIENT_VERSION"
(cd "$work" && npm pack --silent "tus-js-client@$TUS_JS_CLIENT_VERSION" >/dev/null)
tar -xzf "$work/tus-js-client-$TUS_JS_CLIENT_VERSION.tgz" -C "$work" package/dist/tus.min.js package/LICENSE
echo "$TUS_MIN_JS_SHA256  $work/package/dist/tus.min.js" | sha256sum -c --status || {
  log "tus.min.js does not have the pinned SHA-256; not vendored" >&2
  exit 1
}
mkdir -p "$DEST"
cp "$work/package/dist/tus.min.js" "$DEST/tus.min.js"
cp "$work/package/LICENSE" "$DEST/tus-js-client.LICENSE"
log "vendored $DEST/tus.min.js"
