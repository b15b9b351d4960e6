"""Rendering helpers and tool locations for the Dockerfile, manifest and compose checks."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
SERVICES = ("auth", "gateway", "converter", "notification")
HTTP_SERVICES = {"auth": 5000, "gateway": 8080}
# RabbitMQ as three nodes (components/rabbitmq-cluster) and every service twice
CLUSTER = "minikube-rabbitmq-cluster"
OVERLAYS = ("minikube", "minikube-keda", CLUSTER, "podman")
DEPLOYABLE = ("minikube", "minikube-keda", CLUSTER)
COMPONENTS = tuple(sorted(p.name for p in (MANIFESTS / "components").iterdir() if p.is_dir()))
K8S_VERSION = "1.32.0"
CHECKOV_REQUIREMENTS = Path(__file__).with_name("checkov-requirements.txt")


def kustomize(path: Path) -> list[dict]:
    """`kubectl kustomize PATH` parsed into a list of objects."""
    out = subprocess.run(
        ["kubectl", "kustomize", str(path)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, f"kubectl kustomize {path} failed:\n{out.stderr}"
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def combination_dir(tmp: Path, components: tuple[str, ...]) -> Path:
    """A kustomization of base + infra + the given components, in a new folder under tmp."""
    folder = tmp / ("combo-" + ("-".join(components) or "none"))
    folder.mkdir(parents=True, exist_ok=True)

    def rel(path: Path) -> str:
        return os.path.relpath(path, folder)  # kustomize refuses absolute roots

    spec = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": "mp3converter",
        "resources": [rel(MANIFESTS / "base"), rel(MANIFESTS / "infra")],
        "components": [rel(MANIFESTS / "components" / c) for c in components],
    }
    (folder / "kustomization.yaml").write_text(yaml.safe_dump(spec))
    return folder


def all_combinations() -> list[tuple[str, ...]]:
    """None, each component alone, all of them, and all but each one.

    Components meet only through the objects they patch, so these 2n + 2 renders catch what a
    pair or the whole set breaks without rendering all 2**n subsets.
    """
    combos = [(), *((c,) for c in COMPONENTS), COMPONENTS,
              *(tuple(x for x in COMPONENTS if x != c) for c in COMPONENTS)]
    return list(dict.fromkeys(combos))


def find(objects: list[dict], kind: str, name: str | None = None) -> list[dict]:
    """Objects of a kind (and name)."""
    return [
        o for o in objects
        if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    ]


def pod_templates(objects: list[dict]) -> list[tuple[dict, dict]]:
    """(owner, pod spec) for every workload that runs pods."""
    found = []
    for o in objects:
        if o["kind"] in ("Deployment", "StatefulSet", "Job"):
            found.append((o, o["spec"]["template"]["spec"]))
        elif o["kind"] == "CronJob":
            found.append((o, o["spec"]["jobTemplate"]["spec"]["template"]["spec"]))
    return found


def pod_labels(owner: dict) -> dict[str, str]:
    """The labels of the pods a workload runs."""
    template = (owner["spec"]["jobTemplate"]["spec"]["template"] if owner["kind"] == "CronJob"
                else owner["spec"]["template"])
    return template["metadata"].get("labels", {})


def selects(selector: dict | None, labels: dict[str, str]) -> bool:
    """Whether a Kubernetes label selector (matchLabels, matchExpressions) matches ``labels``."""
    selector = selector or {}
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        ok = {"In": key in labels and labels[key] in values,
              "NotIn": labels.get(key) not in values,
              "Exists": key in labels,
              "DoesNotExist": key not in labels}[op]
        if not ok:
            return False
    return True


def container_env_value(objects: list[dict], container: dict, name: str) -> str | None:
    """The value a container sees for variable ``name``: ``env`` (a literal or a Secret's or
    ConfigMap's key) wins over ``envFrom``, whose later sources win over earlier ones."""
    for env in container.get("env", []):
        if env["name"] != name:
            continue
        if "value" in env:
            return env["value"]
        source = env["valueFrom"]
        ref = source.get("secretKeyRef") or source.get("configMapKeyRef")
        assert ref, f"{container['name']}: {name} comes from {source}"
        kind = "Secret" if "secretKeyRef" in source else "ConfigMap"
        return data_values(objects, kind, ref["name"])[ref["key"]]
    found = None
    for source in container.get("envFrom", []):
        for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            if key in source:
                found = data_values(objects, kind, source[key]["name"]).get(name, found)
    return found


def data_values(objects: list[dict], kind: str, name: str) -> dict[str, str]:
    """The decoded data of the ConfigMap or Secret named exactly ``name``."""
    [obj] = find(objects, kind, name)
    if kind == "ConfigMap":
        return dict(obj.get("data") or {})
    return {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}


def secret_values(objects: list[dict], name: str) -> dict[str, str]:
    """The decoded data of the Secret generated as ``name`` (with or without its hash suffix)."""
    [obj] = [o for o in objects if o["kind"] == "Secret"
             and (o["metadata"]["name"] == name or o["metadata"]["name"].startswith(name + "-"))]
    return {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}


def ensure_minikube_secrets() -> None:
    """The minikube overlay reads gitignored secrets/*.env: write them as `make secrets` does."""
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "k8s_secrets.py")],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, f"scripts/k8s_secrets.py failed:\n{out.stdout}{out.stderr}"


def tool(name: str) -> str:
    """Path of a console script installed beside this Python, or on PATH."""
    candidate = Path(sys.executable).with_name(name)
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed: pip install -r requirements-dev.txt")
    return found
