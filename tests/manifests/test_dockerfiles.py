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


DOCKERFILE = ROOT / "Dockerfile"


def dockerfile() -> str:
    """The Dockerfile's text, continuation lines joined."""
    return DOCKERFILE.read_text().replace("\\\n", " ")


def stages() -> dict[str, str]:
    """Text of every stage by its name (the last, unnamed one: "")."""
    found: dict[str, str] = {}
    for block in re.split(r"^(?=FROM\s)", dockerfile(), flags=re.MULTILINE)[1:]:
        first = block.splitlines()[0].split()
        found[first[3] if len(first) == 4 and first[2].upper() == "AS" else ""] = block
    return found


def instructions(text: str, keyword: str) -> list[str]:
    """Arguments of every instruction with that keyword."""
    pattern = re.compile(rf"^{keyword}\s+(.*)$", re.MULTILINE | re.IGNORECASE)
    return [m.group(1).strip() for m in pattern.finditer(text)]


def entrypoint(service: str) -> list[str]:
    """The exec-form ENTRYPOINT of the service's stage."""
    [args] = instructions(stages()[service], "ENTRYPOINT")
    return json.loads(args)


def test_hadolint_passes():
    out = subprocess.run([tool("hadolint"), str(DOCKERFILE)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def test_one_dockerfile_builds_every_service():
    assert not list((ROOT / "src").glob("*/Dockerfile")), "the services share the root Dockerfile"
    text = dockerfile()
    assert instructions(text, "ARG")[:2] == ["BASE_IMAGE=python:3.11-slim", "SERVICE"]
    named = stages()
    assert set(named) == {"build", "runtime", "", *SERVICES}
    assert named[""].split()[1] == "${SERVICE}", "the last stage is the one SERVICE names"
    for name in ("build", "runtime"):
        assert named[name].split()[1] == "${BASE_IMAGE}"
    for service in SERVICES:
        assert named[service].split()[1] == "runtime"


def test_dockerfile_conventions():
    text = dockerfile()
    assert instructions(stages()["runtime"], "USER")[-1].split(":")[0] == "10001"
    assert "PYTHONUNBUFFERED=1" in text and "PYTHONPATH" not in text
    assert "/usr/local" not in text, "use python3 from PATH so any Python base image works"


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_stage_runs_and_exposes_its_own(service):
    stage = stages()[service]
    assert entrypoint(service)[0] == "python3"
    exposed = instructions(stage, "EXPOSE")
    assert exposed == ([str(HTTP_SERVICES[service])] if service in HTTP_SERVICES else [])
    assert not instructions(stage, "COPY") and not instructions(stage, "RUN")


@pytest.mark.parametrize("service", SERVICES)
def test_copy_sources_exist(service):
    copies = [args.replace("${SERVICE}", service) for args in instructions(dockerfile(), "COPY")
              if not args.startswith("--from=")]
    for args in copies:
        *sources, _dest = args.split()
        for source in sources:
            assert (ROOT / source).exists(), f"{service}: COPY source {source} does not exist"
    copied = {a.split()[0].rstrip("/") for a in copies}
    assert {"pyproject.toml", "src/common", f"src/{service}", f"src/{service}/requirements.txt",
            "src/common/requirements.txt"} <= copied


@pytest.mark.parametrize("service", SERVICES)
def test_requirements_include_the_shared_ones(service):
    lines = (ROOT / "src" / service / "requirements.txt").read_text().splitlines()
    assert "-r ../common/requirements.txt" in lines


@pytest.mark.parametrize("service", SERVICES)
def test_entrypoint_modules_import(service):
    """What the image runs imports from the installed package (here: .venv's, pip install -e .),
    wherever it starts."""
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
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
        env={"PATH": "/usr/bin:/bin"}, timeout=60,
    )
    assert out.returncode == 0, out.stderr


def test_heartbeat_probe_module_exists():
    assert importlib.util.find_spec("common.heartbeat") is not None


def test_dockerignore_keeps_only_sources():
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    assert lines[lines.index("*")] == "*" and "!src/" in lines and "!pyproject.toml" in lines
    assert lines.index("*") < lines.index("!src/")
