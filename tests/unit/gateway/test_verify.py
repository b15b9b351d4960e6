"""GET /verify answers JSON to programs and sends browsers to the page, whatever happens."""

import pytest

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8"


@pytest.fixture
def client(client, stand_ins):
    """A gateway whose auth is down: every answer comes from the gateway itself."""
    stand_ins.auth.down = True
    return client


@pytest.mark.parametrize("accept", [None, "*/*", "application/json"])
def test_programs_get_json(client, accept):
    headers = {"Accept": accept} if accept else {}
    missing = client.get("/verify", headers=headers)
    assert missing.status_code == 400 and "missing token" in missing.get_json()["error"]
    down = client.get("/verify", query_string={"token": "abc"}, headers=headers)
    assert down.status_code == 503 and down.is_json


def test_browsers_are_sent_to_the_page_without_the_token(client):
    missing = client.get("/verify", headers={"Accept": BROWSER})
    assert missing.status_code == 303 and missing.headers["Location"] == "/#verify-failed"
    down = client.get("/verify", query_string={"token": "abc"}, headers={"Accept": BROWSER})
    assert down.status_code == 303 and down.headers["Location"] == "/#verify-unavailable"
    assert down.headers["Referrer-Policy"] == "no-referrer"
    assert "no-store" in down.headers["Cache-Control"]


def test_resend_needs_a_bearer_token(client):
    resp = client.post("/verify/resend")
    assert resp.status_code == 401 and resp.is_json
