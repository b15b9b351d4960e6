"""Every overlay and every combination of components renders and is valid Kubernetes."""

from __future__ import annotations

import os
import subprocess
from urllib.parse import unquote, urlsplit

import pytest
import yaml

from tests.manifests.helpers import (
    CLUSTER,
    DEPLOYABLE,
    K8S_VERSION,
    MANIFESTS,
    OVERLAYS,
    all_combinations,
    combination_dir,
    container_env_value,
    data_values,
    find,
    kustomize,
    tool,
)

pytestmark = pytest.mark.manifests

# kinds of CRDs that have no schema in kubernetes-validate; checked by hand (ScaledObject and
# TriggerAuthentication below, PodMonitor and PrometheusRule in test_monitoring.py)
CUSTOM_KINDS = {"ScaledObject", "TriggerAuthentication", "PodMonitor", "PrometheusRule"}


def validate(renders: dict[str, list[dict]], tmp_path) -> None:
    """kubernetes-validate --strict on the built-in objects of each render; fail with its report."""
    paths = []
    for name, objects in renders.items():
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump_all([o for o in objects if o["kind"] not in CUSTOM_KINDS]))
        paths.append(str(path))
    out = subprocess.run(
        [tool("kubernetes-validate"), "--strict", "--quiet", "-k", K8S_VERSION, *paths],
        capture_output=True, text=True, timeout=300,
    )
    report = out.stdout + out.stderr
    assert out.returncode == 0 and "ERROR" not in report and "WARN" not in report, report


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_valid_objects(rendered, overlay, tmp_path):
    objects = rendered[overlay]
    assert {o["kind"] for o in objects} >= {"Deployment", "ConfigMap", "ServiceAccount"}
    validate({overlay: objects}, tmp_path)


def test_component_combinations_render_valid_objects(tmp_path):
    combos = all_combinations()
    renders = {"+".join(c) or "none": kustomize(combination_dir(tmp_path, c)) for c in combos}
    seen_kinds = {o["kind"] for objects in renders.values() for o in objects}
    validate(renders, tmp_path)
    assert {"HorizontalPodAutoscaler", "ScaledObject", "NetworkPolicy", "PersistentVolumeClaim",
            "PodDisruptionBudget", "CronJob", "PodMonitor", "PrometheusRule", "Role",
            "RoleBinding"} <= seen_kinds


def test_ingress_controller_settings_render_valid_objects(tmp_path):
    objects = kustomize(MANIFESTS / "overlays" / "minikube" / "ingress-nginx")
    assert [o["kind"] for o in objects] == ["ConfigMap"]
    validate({"ingress-nginx": objects}, tmp_path)


def keda_with_cluster(tmp_path) -> list[dict]:
    """The KEDA component on top of the cluster overlay (no overlay of its own)."""
    folder = tmp_path / "keda-cluster"
    folder.mkdir()
    spec = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
            "namespace": "mp3converter",
            "resources": [os.path.relpath(MANIFESTS / "overlays" / CLUSTER, folder)],
            "components": [os.path.relpath(MANIFESTS / "components" / "converter-keda", folder)]}
    (folder / "kustomization.yaml").write_text(yaml.safe_dump(spec))
    return kustomize(folder)


@pytest.mark.parametrize("variant", ["minikube-keda", "with-cluster"])
def test_keda_scaledobject_targets_converter_on_video_queue(rendered, variant, tmp_path):
    objects = rendered["minikube-keda"] if variant == "minikube-keda" else keda_with_cluster(
        tmp_path)
    [scaled] = find(objects, "ScaledObject")
    spec = scaled["spec"]
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                      "name": "converter"}
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (1, 10)
    # both lanes a converter consumes: short jobs two per replica, long ones one
    assert {t["metadata"]["queueName"]: t["metadata"]["value"] for t in spec["triggers"]} == {
        "video": "2", "video.long": "1"}
    [service] = find(objects, "Service", "rabbitmq")
    namespace = scaled["metadata"]["namespace"]
    assert namespace == service["metadata"]["namespace"] == "mp3converter"
    for trigger in spec["triggers"]:
        assert trigger["type"] == "rabbitmq"
        assert trigger["authenticationRef"] == {"name": "converter-rabbitmq"}
        # KEDA's operator runs in namespace `keda`: one address (never the converter's
        # RABBITMQ_URL, a list of nodes with the cluster), the broker's Service by its full
        # name, no credentials
        assert "hostFromEnv" not in trigger["metadata"]
        host = urlsplit(trigger["metadata"]["host"])
        assert host.hostname == f"rabbitmq.{namespace}.svc.cluster.local"
        assert host.port == service["spec"]["ports"][0]["port"] == 5672 and host.path == "/%2F"
        assert host.username is None and host.password is None and "," not in host.netloc
    assert service["spec"]["clusterIP"] == "None", "the name resolves to every node"
    # the user and password the converter connects with, from the Secret RabbitMQ itself gets
    [auth] = find(objects, "TriggerAuthentication", trigger["authenticationRef"]["name"])
    assert auth["metadata"]["namespace"] == namespace
    refs = {r["parameter"]: r for r in auth["spec"]["secretTargetRef"]}
    assert refs.keys() == {"username", "password"}
    [rabbitmq] = find(objects, "StatefulSet", "rabbitmq")
    [broker_secret] = [s["secretRef"]["name"] for s in
                       rabbitmq["spec"]["template"]["spec"]["containers"][0]["envFrom"]]
    assert {r["name"] for r in refs.values()} == {broker_secret}
    values = data_values(objects, "Secret", broker_secret)
    [converter] = find(objects, "Deployment", "converter")
    urls = container_env_value(objects, converter["spec"]["template"]["spec"]["containers"][0],
                               "RABBITMQ_URL").split(",")
    assert len(urls) == (3 if variant == "with-cluster" else 1)
    for url in urls:
        parts = urlsplit(url)
        assert (unquote(parts.username), unquote(parts.password)) == (
            values[refs["username"]["key"]], values[refs["password"]["key"]])


@pytest.mark.parametrize("overlay", DEPLOYABLE)
def test_deployable_overlays_are_in_their_namespace(rendered, overlay):
    for obj in rendered[overlay]:
        if obj["kind"] != "Namespace":
            assert obj["metadata"].get("namespace") == "mp3converter", obj["metadata"]["name"]


def test_secret_examples_cover_every_generated_secret():
    spec = yaml.safe_load((MANIFESTS / "overlays/minikube/kustomization.yaml").read_text())
    for generator in spec["secretGenerator"]:
        for env_file in generator["envs"]:
            example = MANIFESTS / "overlays/minikube" / f"{env_file}.example"
            assert example.exists(), f"{example} is missing"


def test_restore_job_is_valid_and_hardened_like_the_rest(tmp_path):
    """components/backup/restore-job.yaml is in no kustomization (it is created by hand), so the
    renders above never see it."""
    path = MANIFESTS / "components" / "backup" / "restore-job.yaml"
    [job] = [d for d in yaml.safe_load_all(path.read_text()) if d]
    assert "restore-job.yaml" not in (path.parent / "kustomization.yaml").read_text().split(
        "resources:")[1], "never applied with the component"
    validate({"restore-job": [job]}, tmp_path)
    spec = job["spec"]["template"]["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["automountServiceAccountToken"] is False and spec["restartPolicy"] == "Never"
    assert job["spec"]["backoffLimit"] == 0, "a failed restore is read before it is run again"
    [container] = spec["containers"]
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert {"requests", "limits"} <= container["resources"].keys()
