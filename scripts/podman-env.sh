# Shared settings for the podman scripts; source it, don't run it.
# podman here runs as root under runc with cgroupfs and no systemd; the default
# ulimits of containers.conf cannot be applied in this kind of sandbox.

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PODMAN_STATE="${PODMAN_STATE:-$REPO_ROOT/var/podman}"
mkdir -p "$PODMAN_STATE"

if [ -z "${CONTAINERS_CONF:-}" ]; then
    CONTAINERS_CONF="$PODMAN_STATE/containers.conf"
    printf '[containers]\ndefault_ulimits = []\n' >"$CONTAINERS_CONF"
    export CONTAINERS_CONF
fi

SERVICES="auth gateway converter notification"
IMAGE_PREFIX="${IMAGE_PREFIX:-mp3converter/}"
IMAGE_TAG="${IMAGE_TAG:-$(sed -n 's/^version = "\(.*\)"/\1/p' "$REPO_ROOT/pyproject.toml")}"
BASE_IMAGE_NAME="${BASE_IMAGE_NAME:-localhost/mp3converter-base:bookworm}"

podman_() {
    podman --runtime runc "$@"
}

ensure_podman_tools() {
    local missing=""
    command -v podman >/dev/null || missing="$missing podman"
    command -v runc >/dev/null || missing="$missing runc"
    command -v debootstrap >/dev/null || missing="$missing debootstrap"
    if [ -n "$missing" ]; then
        echo "installing:$missing" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
    fi
}
