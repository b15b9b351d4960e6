"""The Ingress publishes only the gateway, buffers all bodies but uploads, limits each client."""

from __future__ import annotations

import re

import pytest

from tests.manifests.helpers import DEPLOYABLE, MANIFESTS, find, kustomize

pytestmark = pytest.mark.manifests

PREFIX = "nginx.ingress.kubernetes.io/"
CONTROLLER_SETTINGS = MANIFESTS / "overlays" / "minikube" / "ingress-nginx"
MiB = 1024 * 1024


def size(value: str) -> int:
    """An nginx size ("128k", "2049m", "1g", "512") in bytes; "0" (no limit) is refused."""
    match = re.fullmatch(r"(\d+)([kmg]?)", value.lower())
    assert match, f"not an nginx size: {value!r}"
    number = int(match.group(1)) * {"": 1, "k": 1024, "m": MiB, "g": 1024 * MiB}[match.group(2)]
    assert number > 0, "0 lifts the body size limit"
    return number


def routes(objects: list[dict]) -> list[tuple[dict, str, str, dict]]:
    """(Ingress, path, pathType, backend) of every path of every Ingress."""
    return [(ingress, path["path"], path["pathType"], path["backend"])
            for ingress in find(objects, "Ingress")
            for rule in ingress["spec"]["rules"] for path in rule["http"]["paths"]]


def annotation(ingress: dict, name: str) -> str:
    value = ingress["metadata"].get("annotations", {}).get(PREFIX + name)
    assert value is not None, f"Ingress {ingress['metadata']['name']}: {PREFIX}{name} is not set"
    return value


def gateway_config(objects: list[dict]) -> dict[str, str]:
    [config] = find(objects, "ConfigMap", "gateway-config")
    return config["data"]


@pytest.mark.parametrize("overlay", DEPLOYABLE)
def test_only_the_gateway_is_published(rendered, overlay):
    objects = rendered[overlay]
    found = routes(objects)
    assert found
    for ingress, path, _, backend in found:
        assert backend["service"]["name"] == "gateway", f"{path} -> {backend}"
        for rule in ingress["spec"]["rules"]:
            assert not rule["host"].startswith("mail."), "the mail inbox is not published"
    for service in find(objects, "Service"):
        kind = service["spec"].get("type", "ClusterIP")
        assert kind == "ClusterIP", f"{service['metadata']['name']} is a {kind}"


@pytest.mark.parametrize("overlay", DEPLOYABLE)
def test_bodies_are_buffered_for_every_path_but_upload(rendered, overlay):
    objects = rendered[overlay]
    uploads = [r for r in routes(objects) if r[1] == "/upload"]
    assert [(path, kind) for _, path, kind, _ in uploads] == [("/upload", "Exact")]
    for ingress, path, _, _ in routes(objects):
        buffering = annotation(ingress, "proxy-request-buffering")
        if path == "/upload":
            assert buffering == "off", "uploads stream to the gateway"
        else:
            assert buffering == "on", f"{path}: nginx must read the whole body first"
            body = size(annotation(ingress, "proxy-body-size"))
            assert body <= MiB, f"{path}: JSON bodies are small"
            # the whole body fits the buffer: no temp file on the controller
            assert size(annotation(ingress, "client-body-buffer-size")) >= body


@pytest.mark.parametrize("overlay", DEPLOYABLE)
def test_upload_size_limit_matches_max_upload_bytes(rendered, overlay):
    objects = rendered[overlay]
    [(ingress, *_)] = [r for r in routes(objects) if r[1] == "/upload"]
    limit = size(annotation(ingress, "proxy-body-size"))
    max_upload = int(gateway_config(objects)["MAX_UPLOAD_BYTES"])
    # the file plus its multipart framing passes; nothing much larger does
    assert max_upload < limit <= max_upload + MiB
    for timeout in ("proxy-send-timeout", "proxy-read-timeout"):
        assert int(annotation(ingress, timeout)) >= 600, f"{timeout}: 2 GiB on a slow link"


@pytest.mark.parametrize("overlay", DEPLOYABLE)
def test_every_path_limits_each_client(rendered, overlay):
    objects = rendered[overlay]
    limits = {}
    for ingress, path, _, _ in routes(objects):
        connections = int(annotation(ingress, "limit-connections"))
        rps = int(annotation(ingress, "limit-rps"))
        burst = int(annotation(ingress, "limit-burst-multiplier"))
        assert 0 < connections <= 50 and 0 < rps <= 50 and 0 < burst <= 10, path
        assert int(annotation(ingress, "proxy-connect-timeout")) <= 30, path
        limits[path] = (connections, rps)
    upload, other = limits.pop("/upload"), limits.pop("/")
    assert not limits, f"paths without a reason: {sorted(limits)}"
    assert upload[0] < other[0] and upload[1] < other[1], "uploads get fewer of both"


def test_controller_times_out_slow_clients_and_answers_429():
    [config] = kustomize(CONTROLLER_SETTINGS)
    assert (config["kind"], config["metadata"]["name"], config["metadata"]["namespace"]) == (
        "ConfigMap", "ingress-nginx-controller", "ingress-nginx")
    data = config["data"]
    assert 0 < int(data["client-header-timeout"]) <= 30
    assert 0 < int(data["client-body-timeout"]) <= 60
    assert data["limit-req-status-code"] == data["limit-conn-status-code"] == "429"
    # X-Forwarded-For reaches the gateway as the client's address alone: one trusted proxy
    assert data["use-forwarded-headers"] == data["compute-full-forwarded-for"] == "false"


@pytest.mark.parametrize("overlay", DEPLOYABLE)
def test_gateway_trusts_exactly_the_ingress_as_proxy(rendered, overlay):
    assert gateway_config(rendered[overlay])["TRUSTED_PROXY_COUNT"] == "1"


@pytest.mark.parametrize("overlay", DEPLOYABLE)
def test_gateway_outlasts_the_controllers_idle_upstream_connections(rendered, overlay):
    # else nginx may send a request on a connection the gateway is closing: a spurious 502
    [config] = kustomize(CONTROLLER_SETTINGS)
    idle = int(config["data"]["upstream-keepalive-timeout"])
    assert int(gateway_config(rendered[overlay])["WEB_KEEPALIVE_SECONDS"]) > idle
