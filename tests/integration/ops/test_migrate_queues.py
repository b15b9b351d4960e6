"""`python -m ops migrate` on a broker the previous release used: its classic dead-letter and
delay queues become quorum queues, and every message in them is still there, in order, with its
headers; a run stopped half-way is finished by the next; a second run does nothing."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import types
import urllib.parse

import pika
import pytest

from common import topology
from ops.queues import holding_queue
from tests.conftest import rabbitmq_vhost
from tests.integration.common.test_topology_declare import DECLARED
from tools import devstack
from tools.processes import ROOT

pytestmark = pytest.mark.integration

HOUR_MS = "3600000"


def previous_topology() -> types.ModuleType:
    """common.topology as the previous release (tools/previous_release) has it."""
    commit = (ROOT / "tools" / "previous_release").read_text().split()[0]
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{commit}:src/common/topology.py"],
                            capture_output=True, text=True, check=True).stdout
    module = types.ModuleType("previous_topology")
    exec(compile(source, "previous_topology.py", "exec"), module.__dict__)  # noqa: S102
    return module


@pytest.fixture
def old_vhost(rabbitmq_node):
    """A vhost with the previous release's queues (4 attempts: three classic delay queues)."""
    with rabbitmq_vhost(rabbitmq_node) as url:
        connection = pika.BlockingConnection(pika.URLParameters(url))
        previous_topology().declare(connection.channel(), 4)
        connection.close()
        yield url


@pytest.fixture
def env(old_vhost, mongodb_uri):
    """ops' environment: the old vhost, this release making 3 attempts (2 delay queues)."""
    return {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"),
            "MONGODB_URI": mongodb_uri, "MONGODB_DB": f"mp3test_mq_{secrets.token_hex(4)}",
            "RABBITMQ_URL": old_vhost, "MAX_DELIVERY_ATTEMPTS": "3", "LOG_LEVEL": "INFO"}


def ops(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ops", *args], env=devstack.process_env(env),
                          cwd=devstack.ROOT, capture_output=True, text=True, timeout=120)


def migrate(env: dict) -> dict:
    out = ops(env, "migrate")
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])["queues"]


def publish(url: str, queue: str, body: bytes, **props) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.basic_publish("", queue, body, pika.BasicProperties(delivery_mode=2, **props),
                              mandatory=True)
    finally:
        connection.close()


def take_all(url: str, queue: str) -> list[tuple[pika.BasicProperties, bytes]]:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel, found = connection.channel(), []
        while True:
            method, props, body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                return found
            found.append((props, body))
    finally:
        connection.close()


def queue_types(url: str, node) -> dict[str, str]:
    vhost = urllib.parse.unquote(urllib.parse.urlsplit(url).path[1:])
    out = node.ctl("list_queues", "-p", vhost, "name", "type", "--formatter", "json")
    return {queue["name"]: queue["type"] for queue in json.loads(out)}


def dead_letter(n: int) -> tuple[bytes, dict]:
    return (json.dumps({"job_id": f"job{n}"}).encode(),
            {"x-error": f"gave up after 3 attempts: outage {n}", "x-attempts": 3})


def test_classic_queues_become_quorum_queues_and_keep_every_message(env, old_vhost,
                                                                    rabbitmq_node):
    url = old_vhost
    for n in (1, 2, 3):
        body, headers = dead_letter(n)
        publish(url, "video.dlq", body, headers=headers)
    publish(url, "mp3.dlq", b'{"job_id": "mail"}', headers={"x-error": "smtp down"})
    for n in (1, 2):  # waiting an hour before their second attempt
        publish(url, "video.retry.1", f'{{"job_id": "r{n}"}}'.encode(), expiration=HOUR_MS,
                headers={"x-attempt": 1})
    publish(url, "video.retry.3", b'{"job_id": "r3"}', expiration=HOUR_MS,
            headers={"x-attempt": 3})  # this release makes 3 attempts: decided at once

    assert migrate(env) == {"dead_letter_queues_converted": 2, "dead_letters_moved": 4,
                            "legacy_delay_queues_deleted": 6, "delayed_messages_moved": 3}

    # every queue of today, the long lane and the webhooks' (new: made as they are now) too
    assert queue_types(url, rabbitmq_node) == {name: "quorum" for name in DECLARED}
    listed = [json.loads(line) for line in ops(env, "dlq-list", "video").stdout.splitlines()]
    assert [(e["job_id"], e["reason"], e["attempts"]) for e in listed] == [
        (f"job{n}", f"gave up after 3 attempts: outage {n}", 3) for n in (1, 2, 3)]
    delayed = take_all(url, topology.retry_queue("video", 1))
    assert [(body, props.expiration, props.headers["x-attempt"]) for props, body in delayed] == [
        (b'{"job_id": "r1"}', HOUR_MS, 1), (b'{"job_id": "r2"}', HOUR_MS, 1)]
    [(props, body)] = take_all(url, "video")
    assert body == b'{"job_id": "r3"}' and props.expiration is None
    assert props.headers["x-attempt"] == 3
    [(props, body)] = take_all(url, "mp3.dlq")
    assert body == b'{"job_id": "mail"}' and props.headers["x-error"] == "smtp down"

    assert migrate(env) == {"dead_letter_queues_converted": 0, "dead_letters_moved": 0,
                            "legacy_delay_queues_deleted": 0, "delayed_messages_moved": 0}


@pytest.mark.parametrize("stopped", ["setting aside", "after deleting"])
def test_a_conversion_stopped_half_way_is_finished_by_the_next_run(env, old_vhost,
                                                                   rabbitmq_node, stopped):
    url, holding = old_vhost, holding_queue("video")
    connection = pika.BlockingConnection(pika.URLParameters(url))
    connection.channel().queue_declare(holding, durable=True, arguments=topology.QUORUM)
    connection.close()
    for n in (1, 2):  # already set aside
        body, headers = dead_letter(n)
        publish(url, holding, body, headers=headers)
    if stopped == "setting aside":
        body, headers = dead_letter(3)
        publish(url, "video.dlq", body, headers=headers)  # the classic queue, not yet emptied
    else:
        connection = pika.BlockingConnection(pika.URLParameters(url))
        connection.channel().queue_delete("video.dlq")
        connection.close()

    counts = migrate(env)
    assert counts["dead_letters_moved"] == (3 if stopped == "setting aside" else 2), counts
    types_now = queue_types(url, rabbitmq_node)
    assert types_now["video.dlq"] == "quorum" and holding not in types_now
    expected = [f"job{n}" for n in ((1, 2, 3) if stopped == "setting aside" else (1, 2))]
    assert [json.loads(body)["job_id"] for _, body in take_all(url, "video.dlq")] == expected
