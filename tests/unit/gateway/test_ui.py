"""The web page's files: the modules index.html loads, how they are served, that they ship."""

import re
import tomllib

from gateway.ui import PAGE_POLICY
from tools.processes import ROOT

STATIC = ROOT / "src" / "gateway" / "static"
MODULE_TAG = re.compile(r'<script type="module" src="/static/([\w-]+\.js)"></script>')
IMPORT = re.compile(r'^import [^;]*? from "\./([\w-]+\.js)";$', re.MULTILINE | re.DOTALL)


def _loaded_modules() -> set[str]:
    """The script files the page runs: index.html's module and, from it, every import."""
    page = (STATIC / "index.html").read_text(encoding="utf-8")
    pending = MODULE_TAG.findall(page)
    assert pending == ["app.js"], "one entry module, loaded as a module"
    seen: set[str] = set()
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        assert (STATIC / name).is_file(), f"{name} is imported but missing"
        pending += IMPORT.findall((STATIC / name).read_text(encoding="utf-8"))
    return seen


def test_the_page_loads_every_script_as_a_module_and_nothing_else():
    page = (STATIC / "index.html").read_text(encoding="utf-8")
    assert len(re.findall(r"<script\b", page)) == 1, "no other script, none inline"
    assert not re.search(r"\son[a-z]+=", page), "no inline event handlers (the CSP forbids them)"
    assert "script-src" not in PAGE_POLICY and "default-src 'self';" in PAGE_POLICY
    assert "unsafe" not in PAGE_POLICY
    assert _loaded_modules() == {p.name for p in STATIC.glob("*.js")}, "no file left unused"


def test_every_module_is_served_as_javascript_and_cached_like_the_others(client):
    entry = client.get("/static/app.js")
    assert entry.status_code == 200
    for name in sorted(_loaded_modules()):
        resp = client.get(f"/static/{name}")
        assert resp.status_code == 200, name
        assert resp.mimetype == "text/javascript", (name, resp.mimetype)
        assert resp.get_data() == (STATIC / name).read_bytes()
        assert resp.headers.get("Cache-Control") == entry.headers.get("Cache-Control"), name
        assert resp.headers["ETag"] and resp.headers["Last-Modified"], name
        again = client.get(f"/static/{name}", headers={"If-None-Match": resp.headers["ETag"]})
        assert again.status_code == 304, name


def test_the_package_ships_every_static_file():
    """What pyproject.toml's package data matches is what the wheel, and so the image, holds."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["gateway"]
    shipped = {path for pattern in patterns for path in STATIC.parent.glob(pattern)}
    files = {path for path in STATIC.rglob("*") if path.is_file()}
    assert STATIC / "app.js" in files
    assert files <= shipped, f"not shipped: {sorted(map(str, files - shipped))}"


def test_module_imports_are_relative_to_the_static_folder():
    for path in STATIC.glob("*.js"):
        text = path.read_text(encoding="utf-8")
        specifiers = re.findall(r'\bfrom "([^"]+)"', text) + re.findall(r'\bimport\("([^"]+)"',
                                                                           text)
        assert all(re.fullmatch(r"\./[\w-]+\.js", s) for s in specifiers), (path.name, specifiers)
