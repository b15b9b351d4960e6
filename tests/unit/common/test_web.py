"""common.web: what every Flask service answers to bodies built to break its parsers."""

import pytest
from flask import Flask, request
from gunicorn.http.errors import InvalidChunkSize

from common.web import register_json_errors


@pytest.fixture
def client():
    app = Flask(__name__)

    @app.post("/strict")
    def strict():
        return {"type": type(request.get_json()).__name__}

    @app.post("/lenient")
    def lenient():
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return {"error": "expected a JSON object"}, 400
        return body

    @app.post("/chunked")
    def chunked():
        raise InvalidChunkSize(b"zz")  # what gunicorn's reader raises from request.stream

    register_json_errors(app)
    return app.test_client()


@pytest.mark.parametrize("body", ["[" * 60000, '{"a":' * 12000, "[" * 5000 + "]" * 5000],
                         ids=["arrays", "objects", "closed"])
def test_json_nested_too_deeply_is_400_json_not_a_500(client, body):
    strict = client.post("/strict", data=body, content_type="application/json")
    assert strict.status_code == 400 and strict.is_json, strict.get_data(as_text=True)
    assert set(strict.get_json()) == {"error"}
    lenient = client.post("/lenient", data=body, content_type="application/json")
    assert (lenient.status_code, lenient.get_json()) == (400, {"error": "expected a JSON object"})


def test_ordinary_json_still_reads_and_writes_as_before(client):
    answer = client.post("/lenient", json={"email": "é@example.com", "n": [1, [2, [3]]]})
    assert answer.status_code == 200
    assert answer.get_json() == {"email": "é@example.com", "n": [1, [2, [3]]]}
    assert client.post("/strict", json=[[[]]] * 3).get_json() == {"type": "list"}


def test_a_broken_chunked_body_is_400_json(client):
    answer = client.post("/chunked", data=b"x")
    assert answer.status_code == 400 and answer.is_json
    assert answer.get_json() == {
        "error": "malformed request body: its chunked transfer encoding is invalid"}
