"""The Dockerfiles lint clean, copy what exists, and start modules that import."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys

import pytest

from tests.manifests.helpers import HTTP_SERVICES, ROOT, SERVICES, tool

pytestmark = pytest.mark.manifests


def dockerfile(service: str) -> str:
    """The service's Dockerfile text, continuation lines joined."""
    return (ROOT / "src" / service / "Dockerfile").read_text().replace("\\\n", " ")


def instructions(service: str, keyword: str) -> list[str]:
    """Arguments of every instruction with that keyword."""
    pattern = re.compile(rf"^{keyword}\s+(.*)$", re.MULTILINE | re.IGNORECASE)
    return [m.group(1).strip() for m in pattern.finditer(dockerfile(service))]


def entrypoint(service: str) -> list[str]:
    """The exec-form ENTRYPOINT of the final stage."""
    [*_, last] = instructions(service, "ENTRYPOINT")
    return json.loads(last)


@pytest.mark.parametrize("service", SERVICES)
def test_hadolint_passes(service):
    out = subprocess.run(
        [tool("hadolint"), str(ROOT / "src" / service / "Dockerfile")],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("service", SERVICES)
def test_dockerfile_conventions(service):
    text = dockerfile(service)
    assert instructions(service, "ARG")[0] == "BASE_IMAGE=python:3.11-slim"
    stages = instructions(service, "FROM")
    assert len(stages) >= 2 and all(s.split()[0] == "${BASE_IMAGE}" for s in stages)
    assert instructions(service, "USER")[-1].split(":")[0] == "10001"
    assert "PYTHONUNBUFFERED=1" in text and "PYTHONPATH=/app" in text
    assert "/usr/local" not in text, "use python3 from PATH so any Python base image works"
    assert entrypoint(service)[0] == "python3"
    exposed = instructions(service, "EXPOSE")
    assert exposed == ([str(HTTP_SERVICES[service])] if service in HTTP_SERVICES else [])


@pytest.mark.parametrize("service", SERVICES)
def test_copy_sources_exist(service):
    for args in instructions(service, "COPY"):
        if args.startswith("--from="):
            continue
        *sources, _dest = args.split()
        for source in sources:
            assert (ROOT / source).exists(), f"{service}: COPY source {source} does not exist"
    copied = {a.split()[0].rstrip("/") for a in instructions(service, "COPY")}
    assert {"src/common", f"src/{service}"} <= copied


@pytest.mark.parametrize("service", SERVICES)
def test_requirements_include_the_shared_ones(service):
    lines = (ROOT / "src" / service / "requirements.txt").read_text().splitlines()
    assert "-r ../common/requirements.txt" in lines


@pytest.mark.parametrize("service", SERVICES)
def test_entrypoint_modules_import(service):
    """What the image runs imports from the same /app layout (src/ here)."""
    args = entrypoint(service)
    assert args[:2] == ["python3", "-m"]
    if args[2] == "gunicorn":
        assert args[3:5] == ["-c", "python:common.gunicorn_conf"]
        module, call = args[5].split(":")
        code = (f"import importlib; importlib.import_module('common.gunicorn_conf'); "
                f"m = importlib.import_module('{module}'); "
                f"assert callable(getattr(m, '{call.removesuffix('()')}'))")
        assert module == service
    else:
        assert args[2] == service
        code = (f"import importlib.util; import {service}; "
                f"assert importlib.util.find_spec('{service}.__main__')")
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT / "src", capture_output=True, text=True,
        env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"}, timeout=60,
    )
    assert out.returncode == 0, out.stderr


def test_heartbeat_probe_module_exists():
    assert importlib.util.find_spec("common.heartbeat") is not None


def test_dockerignore_keeps_only_sources():
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    assert lines[lines.index("*")] == "*" and "!src/" in lines
    assert lines.index("*") < lines.index("!src/")
