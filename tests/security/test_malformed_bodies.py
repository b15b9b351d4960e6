"""Bodies built to break the parsers rather than to be read: JSON nested tens of thousands
deep (Python's JSON decoder recurses), and chunked framing with an invalid chunk size. Both are
the client's fault: 400 JSON, from the gateway (gevent worker) as from auth (gthread worker),
never a 500 or a 503 that blames the service."""

import json

import pytest
import requests

from tests.e2e.rawhttp import raw_request

pytestmark = pytest.mark.security
DEEP = "[" * 60000  # under the 64 KiB /register accepts: it reaches auth's JSON decoder


def _is_json_error(status: int, headers, body: bytes) -> str:
    assert headers.get("Content-Type", "").startswith("application/json"), (status, body)
    document = json.loads(body)
    assert set(document) == {"error"} and document["error"], document
    return document["error"]


@pytest.mark.parametrize("nesting", [DEEP, '{"a":' * 12000, "[" * 60000 + "]" * 5000],
                         ids=["arrays", "objects", "arrays closed"])
def test_deeply_nested_json_is_400_through_the_gateway_and_at_auth(stack, nesting):
    for base in (stack.gateway_url, stack.auth_url):
        answer = requests.post(f"{base}/register", data=nesting, timeout=30,
                               headers={"Content-Type": "application/json"})
        assert answer.status_code == 400, (base, answer.status_code, answer.text)
        _is_json_error(answer.status_code, answer.headers, answer.content)
    # and the services are none the worse for it
    assert requests.get(f"{stack.gateway_url}/readyz", timeout=10).status_code == 200


def test_deeply_nested_json_in_an_account_deletion_is_400(stack):
    _, jwt = stack.user()
    answer = requests.delete(f"{stack.gateway_url}/account", data=DEEP, timeout=30, headers={
        "Content-Type": "application/json", "Authorization": f"Bearer {jwt}"})
    assert answer.status_code == 400, (answer.status_code, answer.text)
    _is_json_error(answer.status_code, answer.headers, answer.content)


CHUNKED = "Content-Type: {type}\r\nTransfer-Encoding: chunked"


@pytest.mark.parametrize("framing", [b"zz\r\n{}\r\n0\r\n\r\n", b"-5\r\nhello\r\n0\r\n\r\n",
                                     b"5\r\nhello!!\r\n0\r\n\r\n", b"5;\x01\r\nhello\r\n0\r\n\r\n"],
                         ids=["not hex", "negative", "no CRLF after the data", "bad extension"])
def test_a_broken_chunked_body_is_400_json_and_the_connection_closed(stack, framing):
    """gunicorn's chunked reader raises while the view reads the body (gateway: the upload
    stream; auth: the JSON of /register)."""
    _, jwt = stack.user()
    requests_to_try = [
        (stack.gateway_url, "POST /upload HTTP/1.1\r\nAuthorization: Bearer " + jwt + "\r\n"
         + CHUNKED.format(type="multipart/form-data; boundary=x")),
        (stack.auth_url, "POST /register HTTP/1.1\r\n" + CHUNKED.format(type="application/json")),
    ]
    for base, head in requests_to_try:
        answer = raw_request(base, head, framing)
        assert answer.status == 400, (base, answer.status, answer.body)
        assert "chunked" in _is_json_error(answer.status, answer.headers, answer.body)
        assert answer.closed, f"{base}: the connection stayed open after a broken body"
    assert requests.get(f"{stack.gateway_url}/healthz", timeout=10).status_code == 200
