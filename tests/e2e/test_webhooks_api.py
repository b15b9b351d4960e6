"""The webhooks API of the gateway against the session's stack (default settings: only public
addresses may be registered, so the URLs here are public address literals, which need no DNS)."""

from concurrent.futures import ThreadPoolExecutor

import pymongo
import pytest
import requests

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery"
PUBLIC = "https://93.184.216.34/hooks/mp3"


def _auth(jwt: str) -> dict:
    return {"Authorization": f"Bearer {jwt}"}


def _create(stack, jwt: str, body) -> requests.Response:
    return requests.post(f"{stack.gateway_url}/webhooks", json=body, headers=_auth(jwt),
                         timeout=10)


def test_create_list_show_deliveries_and_delete(stack):
    _, jwt = stack.user()
    resp = _create(stack, jwt, {"url": PUBLIC, "events": ["job.done", "job.expired"]})
    assert resp.status_code == 201, resp.text
    assert resp.headers["Cache-Control"] == "no-store"
    made = resp.json()
    assert set(made) == {"id", "url", "events", "created_at", "enabled", "disabled_at",
                         "disabled_reason", "consecutive_failures", "secret"}
    assert made["url"] == PUBLIC and made["events"] == ["job.done", "job.expired"]
    assert made["enabled"] is True and made["secret"].startswith("whsec_")
    everything = _create(stack, jwt, {"url": "http://93.184.216.35:8443/x?y=1"}).json()
    assert everything["events"] == ["job.done", "job.failed", "job.expired"]

    listed = requests.get(f"{stack.gateway_url}/webhooks", headers=_auth(jwt), timeout=10)
    assert listed.status_code == 200
    hooks = listed.json()["webhooks"]
    assert [h["id"] for h in hooks] == [made["id"], everything["id"]]
    assert all("secret" not in h for h in hooks)  # shown once, at creation

    deliveries = requests.get(f"{stack.gateway_url}/webhooks/{made['id']}/deliveries",
                              headers=_auth(jwt), timeout=10)
    assert deliveries.status_code == 200 and deliveries.json() == {"deliveries": []}

    gone = requests.delete(f"{stack.gateway_url}/webhooks/{made['id']}", headers=_auth(jwt),
                           timeout=10)
    assert gone.status_code == 204
    again = requests.delete(f"{stack.gateway_url}/webhooks/{made['id']}", headers=_auth(jwt),
                            timeout=10)
    assert again.status_code == 404
    assert [h["id"] for h in requests.get(f"{stack.gateway_url}/webhooks", headers=_auth(jwt),
                                          timeout=10).json()["webhooks"]] == [everything["id"]]


def test_another_users_webhook_is_404_everywhere(stack):
    _, owner = stack.user()
    _, other = stack.user()
    hook = _create(stack, owner, {"url": PUBLIC}).json()
    base = f"{stack.gateway_url}/webhooks/{hook['id']}"
    for method, url in (("DELETE", base), ("POST", f"{base}/test"),
                        ("GET", f"{base}/deliveries"),
                        ("GET", f"{stack.gateway_url}/webhooks/not-an-id/deliveries"),
                        ("DELETE", f"{stack.gateway_url}/webhooks/{'0' * 24}")):
        resp = requests.request(method, url, headers=_auth(other), timeout=10)
        assert resp.status_code == 404, (method, url, resp.text)
        assert resp.json() == {"error": "no such webhook"}
    assert requests.get(f"{stack.gateway_url}/webhooks", headers=_auth(other),
                        timeout=10).json() == {"webhooks": []}
    assert len(requests.get(f"{stack.gateway_url}/webhooks", headers=_auth(owner),
                            timeout=10).json()["webhooks"]) == 1


@pytest.mark.parametrize("body, status, words", [
    ([PUBLIC], 400, "JSON object"),
    ({"url": PUBLIC, "secret": "mine"}, 422, "unknown field secret"),
    ({}, 422, "url is missing"),
    ({"url": PUBLIC, "events": []}, 422, "events must be"),
    ({"url": PUBLIC, "events": ["job.started"]}, 422, "events must be"),
    ({"url": "https://93.184.216.34/" + "a" * 2100}, 422, "longer than 2000 characters"),
])
def test_bad_bodies_are_refused_naming_the_problem(stack, body, status, words):
    _, jwt = stack.user()
    resp = _create(stack, jwt, body)
    assert resp.status_code == status, resp.text
    assert words in resp.json()["error"]


def test_an_account_may_have_webhooks_per_account_endpoints(stack):
    _, jwt = stack.user()
    for n in range(10):
        assert _create(stack, jwt, {"url": f"{PUBLIC}/{n}"}).status_code == 201
    resp = _create(stack, jwt, {"url": f"{PUBLIC}/11"})
    assert resp.status_code == 409
    assert "10 webhooks" in resp.json()["error"]


def test_webhooks_made_at_once_never_pass_the_limit(stack):
    """30 registrations sent together (an account's limit is 10): counting before recording let
    12 through; now those answered 201 are exactly those listed, and no more than 10."""
    _, jwt = stack.user()
    with ThreadPoolExecutor(max_workers=15) as pool:
        answers = list(pool.map(lambda n: _create(stack, jwt, {"url": f"{PUBLIC}/{n}"}),
                                range(30)))
    assert {resp.status_code for resp in answers} <= {201, 409}
    made = {resp.json()["id"] for resp in answers if resp.status_code == 201}
    listed = requests.get(f"{stack.gateway_url}/webhooks", headers=_auth(jwt), timeout=10)
    assert {hook["id"] for hook in listed.json()["webhooks"]} == made
    assert 1 <= len(made) <= 10


def test_an_api_key_may_not_manage_webhooks(stack):
    _, jwt = stack.user()
    key = requests.post(f"{stack.gateway_url}/tokens", headers=_auth(jwt), timeout=10,
                        json={"name": "script", "scopes": ["upload", "read", "delete"]})
    assert key.status_code == 201, key.text
    secret = key.json()["secret"]
    assert _create(stack, secret, {"url": PUBLIC}).status_code == 403
    assert requests.get(f"{stack.gateway_url}/webhooks", headers=_auth(secret),
                        timeout=10).status_code == 403
    assert requests.get(f"{stack.gateway_url}/webhooks", timeout=10).status_code == 401


def test_deleting_the_account_deletes_its_webhooks(stack):
    email, jwt = stack.user(password=PASSWORD)
    owner = stack.account_id(jwt)
    assert _create(stack, jwt, {"url": PUBLIC}).status_code == 201
    db = pymongo.MongoClient(stack.env["MONGODB_URI"])[stack.env["MONGODB_DB"]]
    assert db.webhooks.count_documents({"owner": owner}) == 1
    resp = requests.delete(f"{stack.gateway_url}/account", auth=(email, PASSWORD), timeout=10)
    assert resp.status_code == 204, resp.text
    assert db.webhooks.count_documents({"owner": owner}) == 0
    db.client.close()
