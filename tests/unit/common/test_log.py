"""JSON log lines: one object per line, carrying the job id of the work in hand."""

import io
import json
import logging

import pytest

from common import log as jsonlog


@pytest.fixture
def logged():
    """A logger writing through JsonFormatter into a buffer; returns (logger, lines())."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(jsonlog.JsonFormatter("converter"))
    logger = logging.getLogger("mp3test.json")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, lambda: [json.loads(line) for line in buffer.getvalue().splitlines()]
    logger.handlers[:] = []


def test_one_json_object_per_line_with_the_basics(logged):
    logger, lines = logged
    logger.info("first")
    logger.warning("second %s", "line")
    docs = lines()
    assert [d["msg"] for d in docs] == ["first", "second line"]
    assert [d["level"] for d in docs] == ["info", "warning"]
    assert all(d["service"] == "converter" and d["logger"] == "mp3test.json" for d in docs)
    assert all(d["ts"].endswith("Z") and "T" in d["ts"] for d in docs)
    assert "job_id" not in docs[0]


def test_job_id_from_bound_job_only_inside_the_block(logged):
    logger, lines = logged
    with jsonlog.bound_job("65f0c0ffee0000000000abcd"):
        logger.info("inside")
    logger.info("after")
    inside, after = lines()
    assert inside["job_id"] == "65f0c0ffee0000000000abcd"
    assert "job_id" not in after


def test_newlines_extras_and_tracebacks_stay_on_one_line(logged):
    logger, lines = logged
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("two\nlines", extra={"attempt": 2, "fid": object()})
    (doc,) = lines()
    assert doc["msg"] == "two\nlines"
    assert doc["attempt"] == 2
    assert isinstance(doc["fid"], str)
    assert "ValueError: boom" in doc["exc"]


def test_configure_sends_every_logger_to_stdout_as_json(capsys):
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        jsonlog.configure("notification", "debug")
        logging.getLogger("some.module").debug("hello", extra={"to": "a@example.com"})
        logging.getLogger("pika").info("chatter")  # quietened to WARNING
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    doc = json.loads(lines[0])
    assert doc["service"] == "notification" and doc["msg"] == "hello"
    assert doc["to"] == "a@example.com" and doc["level"] == "debug"
