"""Every overlay and every combination of components renders and is valid Kubernetes."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from tests.manifests.helpers import (
    K8S_VERSION,
    MANIFESTS,
    OVERLAYS,
    all_combinations,
    combination_dir,
    kustomize,
    tool,
)

pytestmark = pytest.mark.manifests

# kinds of CRDs that have no schema in kubernetes-validate; checked by hand (ScaledObject below,
# PodMonitor and PrometheusRule in test_monitoring.py)
CUSTOM_KINDS = {"ScaledObject", "PodMonitor", "PrometheusRule"}


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
            "PodDisruptionBudget", "CronJob", "PodMonitor", "PrometheusRule"} <= seen_kinds


def test_ingress_controller_settings_render_valid_objects(tmp_path):
    objects = kustomize(MANIFESTS / "overlays" / "minikube" / "ingress-nginx")
    assert [o["kind"] for o in objects] == ["ConfigMap"]
    validate({"ingress-nginx": objects}, tmp_path)


def test_keda_scaledobject_targets_converter_on_video_queue(rendered):
    [scaled] = [o for o in rendered["minikube-keda"] if o["kind"] == "ScaledObject"]
    spec = scaled["spec"]
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                      "name": "converter"}
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (1, 10)
    [trigger] = spec["triggers"]
    assert trigger["type"] == "rabbitmq"
    assert trigger["metadata"]["queueName"] == "video"
    # KEDA resolves hostFromEnv from the converter container's environment
    [converter] = [o for o in rendered["minikube-keda"]
                   if o["kind"] == "Deployment" and o["metadata"]["name"] == "converter"]
    secret_name = converter["spec"]["template"]["spec"]["containers"][0]["envFrom"][1][
        "secretRef"]["name"]
    [secret] = [o for o in rendered["minikube-keda"]
                if o["kind"] == "Secret" and o["metadata"]["name"] == secret_name]
    assert trigger["metadata"]["hostFromEnv"] in secret["data"]


def test_minikube_overlay_is_in_its_namespace(rendered):
    for obj in rendered["minikube"]:
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
