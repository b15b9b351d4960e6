"""The real images, built from the Dockerfile (one per SERVICE), run the podman overlay end to end.

podman stands in for a cluster: `podman kube play` runs the overlay's Deployments with their
ConfigMaps, emptyDirs and security contexts, on the host network, against the host's MariaDB,
RabbitMQ, MongoDB-compatible server and SMTP sink.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests
import yaml

from tests.conftest import ffprobe_codec, ffprobe_duration, rabbitmq_vhost
from tests.manifests.helpers import MANIFESTS, ROOT, SERVICES, find, kustomize
from tools.processes import free_port

pytestmark = [pytest.mark.podman, pytest.mark.timeout(2400)]

PODMAN_STATE = ROOT / "var" / "podman"


def podman_env() -> dict[str, str]:
    """The environment podman needs here (runc, no default ulimits)."""
    PODMAN_STATE.mkdir(parents=True, exist_ok=True)
    conf = PODMAN_STATE / "containers.conf"
    conf.write_text("[containers]\ndefault_ulimits = []\n")
    return {**os.environ, "CONTAINERS_CONF": str(conf)}


def podman(*args: str, check: bool = True, timeout: float = 300, **kwargs):
    """Run `podman --runtime runc ARGS`."""
    out = subprocess.run(["podman", "--runtime", "runc", *args], env=podman_env(),
                         capture_output=True, text=True, timeout=timeout, **kwargs)
    if check:
        assert out.returncode == 0, f"podman {' '.join(args)}:\n{out.stdout}\n{out.stderr}"
    return out


@pytest.fixture(scope="module")
def images() -> dict[str, str]:
    """The four images, built by the same script as `make podman-images`."""
    out = subprocess.run(["bash", str(ROOT / "scripts" / "podman-images.sh")], cwd=ROOT,
                         capture_output=True, text=True, timeout=2400)
    assert out.returncode == 0, out.stdout + out.stderr
    objects = kustomize(MANIFESTS / "overlays" / "podman")
    return {d["metadata"]["name"]: d["spec"]["template"]["spec"]["containers"][0]["image"]
            for d in find(objects, "Deployment")}


@pytest.fixture(scope="module")
def settings(mysql_db, rabbitmq_node, mongodb_uri, mailsink) -> dict[str, dict[str, str]]:
    """ConfigMap values that point the overlay at this test's servers and ports."""
    with rabbitmq_vhost(rabbitmq_node) as amqp_url:
        auth_port, gateway_port = free_port(), free_port()
        backends = {"RABBITMQ_URL": amqp_url, "MONGODB_URI": mongodb_uri}
        download_key = {"DOWNLOAD_URL_SECRET": secrets.token_urlsafe(32)}  # signed by both
        db = {"MONGODB_DB": f"mp3podman_{secrets.token_hex(4)}", "RETRY_BASE_SECONDS": "1"}
        smtp = {"SMTP_HOST": mailsink.host, "SMTP_PORT": str(mailsink.port),
                "PUBLIC_URL": f"http://127.0.0.1:{gateway_port}"}
        configs = {
            "auth-config": {**{k: v for k, v in mysql_db.items() if k != "MYSQL_PASSWORD"},
                            "HOST": "127.0.0.1", "PORT": str(auth_port), **smtp},
            "auth-secrets": {"JWT_SECRET": secrets.token_urlsafe(32),
                             "MYSQL_PASSWORD": mysql_db["MYSQL_PASSWORD"]},
            "gateway-config": {**db, "HOST": "127.0.0.1", "PORT": str(gateway_port),
                               "AUTH_URL": f"http://127.0.0.1:{auth_port}"},
            "gateway-secrets": {**backends, **download_key},
            "converter-config": db,
            "converter-secrets": backends,
            "notification-config": {**db, **smtp, "AUTH_URL": f"http://127.0.0.1:{auth_port}"},
            "notification-secrets": {**backends, **download_key},
        }
        for service in ("auth", "gateway", "converter", "notification"):  # one host network
            configs[f"{service}-config"]["METRICS_PORT"] = str(free_port())
        yield configs


def render_for_host(settings: dict[str, dict[str, str]], path: Path) -> list[dict]:
    """The podman overlay with this test's values merged into its ConfigMaps."""
    objects = kustomize(MANIFESTS / "overlays" / "podman")
    for obj in find(objects, "ConfigMap"):
        obj["data"].update(settings.get(obj["metadata"]["name"], {}))
    path.write_text(yaml.safe_dump_all(objects))
    return objects


def env_args(objects: list[dict], *names: str) -> list[str]:
    """`-e K=V` for every key of the named ConfigMaps."""
    args = []
    for name in names:
        [config] = find(objects, "ConfigMap", name)
        args += [arg for k, v in config["data"].items() for arg in ("-e", f"{k}={v}")]
    return args


def init_db_script() -> list[str]:
    """The command of the infra's auth-init-db Job."""
    [job] = find(kustomize(MANIFESTS / "infra"), "Job", "auth-init-db")
    container = job["spec"]["template"]["spec"]["containers"][0]
    return container["command"] + container["args"]


@pytest.fixture(scope="module")
def pod(images, settings, tmp_path_factory):
    """The overlay running under `podman kube play`; yields (objects, gateway URL, admin)."""
    play = tmp_path_factory.mktemp("podman") / "podman.yaml"
    objects = render_for_host(settings, play)
    admin = (f"admin-{secrets.token_hex(4)}@example.com", secrets.token_urlsafe(12))
    init = ["run", "--rm", "--network", "host", "--read-only", "--tmpfs", "/tmp",
            *env_args(objects, "auth-config", "auth-secrets"),
            "-e", f"ADMIN_EMAIL={admin[0]}", "-e", f"ADMIN_PASSWORD={admin[1]}",
            "--entrypoint", init_db_script()[0], images["auth"], *init_db_script()[1:]]
    first, again = podman(*init, timeout=120), podman(*init, timeout=120)
    assert f"created user {admin[0]}" in first.stdout
    assert "already exists" in again.stdout, "the init Job must be safe to run again"
    podman("kube", "down", str(play), check=False)
    podman("kube", "play", str(play), timeout=300)
    gateway = f"http://127.0.0.1:{settings['gateway-config']['PORT']}"
    try:
        wait_ready(gateway, objects)
        yield objects, gateway, admin
    finally:
        for name in SERVICES:
            logs = podman("logs", "--tail", "30", f"{name}-pod-0-{name}", check=False)
            print(f"===== {name} =====\n{logs.stdout}{logs.stderr}")
        podman("kube", "down", str(play), check=False)


def wait_ready(gateway: str, objects: list[dict], timeout: float = 120) -> None:
    """Wait for the gateway's /readyz (auth, MongoDB and RabbitMQ reachable)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{gateway}/readyz", timeout=5).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(1)
    states = podman("ps", "-a", "--format", "{{.Names}} {{.Status}}", check=False).stdout
    pytest.fail(f"gateway not ready within {timeout}s:\n{states}")


def curl(*args: str) -> subprocess.CompletedProcess:
    """Run curl as a person would; fail on a transport error."""
    out = subprocess.run(["curl", "-sS", *args], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out


def test_classic_curl_walkthrough(pod, media, mailsink, tmp_path):
    _objects, gw, (email, password) = pod
    jwt = curl("-X", "POST", f"{gw}/login", "-u", f"{email}:{password}").stdout.strip()
    assert jwt.count(".") == 2, f"expected a JWT, got {jwt!r}"

    video = media("mkv_mp3")
    upload = curl("-X", "POST", "-F", f"file=@{video}", "-H", f"Authorization: Bearer {jwt}",
                  f"{gw}/upload")
    body = json.loads(upload.stdout)
    assert {"video_fid", "job_id"} <= body.keys(), upload.stdout

    deadline, job = time.monotonic() + 180, {}
    while time.monotonic() < deadline:
        job = requests.get(f"{gw}/jobs/{body['job_id']}",
                           headers={"Authorization": f"Bearer {jwt}"}, timeout=10).json()
        if job["status"] in ("done", "failed"):
            break
        time.sleep(1)
    assert job.get("status") == "done", job

    mp3 = tmp_path / "x.mp3"
    curl("--output", str(mp3), "-H", f"Authorization: Bearer {jwt}",
         f"{gw}/download?fid={job['mp3_fid']}")
    assert ffprobe_codec(mp3) == "mp3"
    assert ffprobe_duration(mp3) == pytest.approx(ffprobe_duration(video), abs=0.5)

    [message] = mailsink.wait_for(1, timeout=60, to=email)
    assert message["Subject"].startswith("Your MP3 is ready")
    text = message.get_body(("plain",)).get_content() if message.is_multipart() \
        else message.get_content()
    assert f"{gw}/download?fid={job['mp3_fid']}" in text


def test_containers_run_as_non_root_on_read_only_root(pod):
    for name in SERVICES:
        container = f"{name}-pod-0-{name}"
        info = json.loads(podman("inspect", container).stdout)[0]
        assert info["State"]["Running"], f"{container}: {info['State']}"
        assert info["HostConfig"]["ReadonlyRootfs"] is True, container
        ids = podman("exec", container, "id", "-u").stdout.strip()
        assert ids == "10001", f"{container} runs as uid {ids}"
        # the service's code (installed in /opt/venv) cannot be changed
        denied = podman("exec", container, "touch", "/opt/venv/probe", check=False)
        assert denied.returncode != 0 and "Read-only file system" in denied.stderr
        podman("exec", container, "touch", "/tmp/probe")  # the emptyDir is writable


def test_consumers_pass_their_liveness_probe(pod):
    for name in ("converter", "notification"):
        [deployment] = find(pod[0], "Deployment", name)
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        config = find(pod[0], "ConfigMap", f"{name}-config")[0]["data"]
        command = ["python3", "-m", "common.heartbeat", "check", name]
        assert config["HEARTBEAT_FILE"] == f"/tmp/{name}.heartbeat"
        podman("exec", f"{name}-pod-0-{container['name']}", *command)


def test_sweep_cronjob_runs_in_the_gateway_image(pod, images, settings):
    """The CronJob's command, in its image, with its ConfigMap, as it runs on a cluster: it
    reaches MongoDB, RabbitMQ and auth (which accounts were deleted?) and reports each step."""
    objects = kustomize(MANIFESTS / "components" / "sweep-cronjob")
    [cronjob] = find(objects, "CronJob", "ops-sweep")
    [container] = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "mp3converter/gateway"
    [config] = find(objects, "ConfigMap", "ops-config")
    gateway = settings["gateway-config"]
    env = {**config["data"], "MONGODB_DB": gateway["MONGODB_DB"], "AUTH_URL": gateway["AUTH_URL"],
           "RABBITMQ_URL": settings["gateway-secrets"]["RABBITMQ_URL"],
           "MONGODB_URI": settings["gateway-secrets"]["MONGODB_URI"]}
    command = container["command"]
    out = podman("run", "--rm", "--network", "host", "--read-only", "--tmpfs", "/tmp",
                 "--user", "10001:10001", "--cap-drop", "ALL",
                 *[arg for k, v in env.items() for arg in ("-e", f"{k}={v}")],
                 "--entrypoint", command[0], images["gateway"], *command[1:], timeout=120)
    *logs, last = out.stdout.strip().splitlines()
    counts = json.loads(last)
    assert {"republished", "requeued", "expired", "orphan_files", "orphan_chunks",
            "deleted_accounts_jobs"} <= counts.keys(), last
    assert not [line for line in logs if json.loads(line).get("level") not in ("info", "debug")], \
        out.stdout


def test_kube_down_removes_the_pods(images, settings, tmp_path):
    """Runs last in this module: `podman kube down` leaves nothing of the overlay behind."""
    play = tmp_path / "podman.yaml"
    render_for_host(settings, play)
    podman("kube", "down", str(play), check=False)
    names = podman("pod", "ps", "--format", "{{.Name}}").stdout.split()
    assert not [n for n in names if n.split("-pod")[0] in SERVICES], names


@pytest.fixture(autouse=True, scope="module")
def _tools_present():
    """podman, runc and debootstrap are installed by scripts/podman-env.sh when missing."""
    if not shutil.which("curl"):
        pytest.fail("curl is needed for the walkthrough")
