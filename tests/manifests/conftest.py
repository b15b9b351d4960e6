"""Fixtures for the Dockerfile, manifest, compose and podman checks."""

from __future__ import annotations

import shutil
import subprocess
import venv

import pytest

from tests.manifests.helpers import (
    CHECKOV_REQUIREMENTS,
    MANIFESTS,
    OVERLAYS,
    ROOT,
    ensure_minikube_secrets,
    kustomize,
)


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[dict]]:
    """Each overlay rendered once."""
    if not shutil.which("kubectl"):
        pytest.fail("kubectl is needed to render the manifests (it ships kustomize)")
    ensure_minikube_secrets()
    return {name: kustomize(MANIFESTS / "overlays" / name) for name in OVERLAYS}


@pytest.fixture(scope="session")
def checkov() -> str:
    """checkov in its own virtualenv under var/ (its pins clash with pytest's), made on demand."""
    env_dir = ROOT / "var" / "checkov-venv"
    stamp = env_dir / "requirements.stamp"
    wanted = CHECKOV_REQUIREMENTS.read_text()
    if not stamp.exists() or stamp.read_text() != wanted:
        venv.create(env_dir, with_pip=True, clear=True)
        subprocess.run(
            [str(env_dir / "bin" / "pip"), "install", "-q", "-r", str(CHECKOV_REQUIREMENTS)],
            check=True, timeout=900,
        )
        stamp.write_text(wanted)
    return str(env_dir / "bin" / "checkov")
