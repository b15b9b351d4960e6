"""checkov passes on the rendered deployable overlays, but for the listed, explained skips."""

from __future__ import annotations

import fnmatch
import json
import subprocess

import pytest
import yaml

from tests.manifests.helpers import DEPLOYABLE, MANIFESTS

pytestmark = pytest.mark.manifests

SKIPS_FILE = MANIFESTS / "checkov-skips.txt"


def load_skips() -> list[tuple[str, str, str]]:
    """(check id, resource glob, reason) for every line of the skip list."""
    skips = []
    for line in SKIPS_FILE.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        check, resource, reason = (line.split(None, 2) + ["", ""])[:3]
        skips.append((check, resource, reason.strip()))
    return skips


def test_every_skip_has_a_reason():
    skips = load_skips()
    assert skips
    for check, resource, reason in skips:
        assert check.startswith("CKV"), check
        assert len(reason.split()) >= 5, f"{check} {resource}: give a one-line reason"


def test_checkov_passes_on_rendered_overlays(rendered, checkov, tmp_path):
    for overlay in DEPLOYABLE:
        (tmp_path / f"{overlay}.yaml").write_text(yaml.safe_dump_all(rendered[overlay]))
    out = subprocess.run(
        [checkov, "--framework", "kubernetes", "--skip-download", "--quiet", "--compact",
         "-o", "json", "-d", str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )
    assert out.stdout.strip(), out.stderr
    reports = json.loads(out.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    assert sum(r["summary"]["passed"] for r in reports) > 100, "checkov checked nothing"
    failed = [(c["check_id"], c["resource"], c["check_name"])
              for r in reports for c in r["results"]["failed_checks"]]
    skips = load_skips()
    unexplained = sorted({
        f"{check} {resource}: {name}" for check, resource, name in failed
        if not any(check == s and fnmatch.fnmatchcase(resource, glob) for s, glob, _ in skips)
    })
    assert not unexplained, "checkov failures not in checkov-skips.txt:\n" + "\n".join(unexplained)
    unused = [f"{s} {glob}" for s, glob, _ in skips
              if not any(check == s and fnmatch.fnmatchcase(res, glob) for check, res, _ in failed)]
    assert not unused, f"skips that no longer match a failure: {unused}"
