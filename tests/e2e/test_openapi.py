"""The OpenAPI document: every route documented, and generated requests never cause a 500."""

from __future__ import annotations

import base64
import json
import re

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from gateway import create_app
from gateway.ui import OPENAPI_PATH
from tests.e2e.test_jobs_pages import seed

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
PASSWORD = "fuzzing password 1"


def _documented() -> dict:
    return json.loads(OPENAPI_PATH.read_text(encoding="utf-8"))


def _flask_routes(monkeypatch) -> set[tuple[str, str]]:
    """(OpenAPI path, method) of every URL rule of the gateway app: HEAD and OPTIONS only
    where a route answers them itself (the tus routes), not Flask's automatic ones."""
    monkeypatch.setenv("DOWNLOAD_URL_SECRET", "only-for-listing-routes-" + "x" * 32)
    app = create_app()
    found = set()
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        automatic = {"HEAD"} if "GET" in rule.methods else set()
        if getattr(rule, "provide_automatic_options", True):
            automatic.add("OPTIONS")
        for method in rule.methods - automatic:
            found.add((path, method.lower()))
    return found


def test_every_route_is_documented_and_every_documented_route_exists(monkeypatch):
    routes = _flask_routes(monkeypatch)
    doc = _documented()
    documented = {(path, method) for path, item in doc["paths"].items() for method in item}
    assert routes - documented == set(), "routes missing from openapi.json"
    assert documented - routes == set(), "openapi.json documents routes the gateway lacks"
    for path, method in documented:
        assert doc["paths"][path][method]["responses"], f"{method} {path} has no responses"


def test_document_declares_bearer_basic_and_api_key_security():
    schemes = _documented()["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {**schemes["bearerAuth"], "type": "http", "scheme": "bearer"}
    assert schemes["basicAuth"] == {**schemes["basicAuth"], "type": "http", "scheme": "basic"}
    assert schemes["apiKeyAuth"] == {**schemes["apiKeyAuth"], "type": "http", "scheme": "bearer"}
    paths = _documented()["paths"]
    assert paths["/upload"]["post"]["security"] == [{"bearerAuth": []}, {"apiKeyAuth": []}]
    for path, method in (("/tokens", "post"), ("/tokens", "get"), ("/tokens/{key_id}", "delete"),
                         ("/account", "get"), ("/webhooks", "post"), ("/webhooks", "get"),
                         ("/webhooks/{webhook_id}", "delete"),
                         ("/webhooks/{webhook_id}/test", "post"),
                         ("/webhooks/{webhook_id}/deliveries", "get")):  # never with an API key
        assert {"apiKeyAuth": []} not in paths[path][method]["security"], (path, method)


@pytest.mark.e2e
def test_gateway_serves_the_document_and_the_page(stack):
    served = requests.get(f"{stack.gateway_url}/openapi.json", timeout=10)
    assert served.status_code == 200
    assert served.headers["Content-Type"].startswith("application/json")
    assert served.json() == _documented()
    page = requests.get(f"{stack.gateway_url}/", timeout=10)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "My conversions" in page.text
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    for asset in ("/static/app.js", "/static/style.css"):
        assert requests.get(f"{stack.gateway_url}{asset}", timeout=10).status_code == 200


@pytest.fixture(scope="module")
def fuzz_user(stack) -> dict[str, str]:
    """A real account whose credentials go with every generated request."""
    email = "fuzz-user@example.com"
    requests.post(f"{stack.gateway_url}/register",
                  json={"email": email, "password": PASSWORD}, timeout=10)
    token = stack.login(email, PASSWORD)
    basic = base64.b64encode(f"{email}:{PASSWORD}".encode()).decode()
    return {"bearer": f"Bearer {token}", "basic": f"Basic {basic}"}


# The file the gateway serves (test_gateway_serves_the_document_and_the_page checks they match).
schema = schemathesis.openapi.from_path(OPENAPI_PATH)


@schemathesis.serializer("application/offset+octet-stream")
def _tus_body(_ctx, value) -> bytes:
    """The bytes of a resumable upload's PATCH (tus), sent as they are."""
    return value if isinstance(value, bytes) else str(value).encode()


@pytest.mark.e2e
@schema.parametrize()
@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                 HealthCheck.function_scoped_fixture])
def test_generated_requests_never_cause_a_server_error(case, stack, fuzz_user):
    """Authenticated as a real user, every generated request gets a documented, non-5xx answer."""
    security = case.operation.definition.raw.get("security")
    if security == [{"basicAuth": []}]:
        case.headers = {**(case.headers or {}), "Authorization": fuzz_user["basic"]}
    elif security and {"bearerAuth": []} in security:
        case.headers = {**(case.headers or {}), "Authorization": fuzz_user["bearer"]}
    case.call_and_validate(base_url=stack.gateway_url, checks=CHECKS, timeout=30)


@pytest.mark.e2e
def test_pages_of_jobs_and_their_refusals_match_the_document(stack):
    """A page with a `next` (and its Link header), the last page, and the 400s of a bad limit or
    cursor, each checked against the document as the generated requests are."""
    _email, jwt = stack.user(PASSWORD)
    seed(stack, stack.account_id(jwt), 3)
    operation = schema["/jobs"]["GET"]
    auth = {"Authorization": f"Bearer {jwt}"}

    def answer(query: dict) -> requests.Response:
        case = operation.Case(query=query, headers=auth)
        return case.call_and_validate(base_url=stack.gateway_url, checks=CHECKS, timeout=30)

    first = answer({"limit": 2})
    assert first.status_code == 200 and first.json()["next"]
    assert first.headers["link"] == [f'</jobs?limit=2&cursor={first.json()["next"]}>; rel="next"']
    last = answer({"limit": 2, "cursor": first.json()["next"]})
    assert last.status_code == 200 and last.json()["next"] is None
    assert answer({"limit": 0}).status_code == 400
    assert answer({"cursor": "not-a-cursor"}).status_code == 400
