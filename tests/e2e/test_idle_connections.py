"""Broker connections that sit idle for many heartbeats: nothing waits or fails because of it.

Every service gets a 1 s heartbeat (``?heartbeat=1`` in RABBITMQ_URL): the broker drops a client
that stays silent for about two intervals. A blocking connection beats only while it is used,
so without more the gateway's and the consumers' idle connections would be dropped within the
idle period below and found dead on their next use.
"""

import json
import time

import pytest
import requests

from tests.conftest import rabbitmq_vhost
from tests.e2e.api import classic_upload, wait_for_job
from tools.isolation import rabbitmq_connections

pytestmark = pytest.mark.e2e

HEARTBEAT_SECONDS = 1
IDLE_SECONDS = 5  # more than three heartbeat intervals, plus margin
FAST_SECONDS = 2


@pytest.fixture
def heartbeat_url(rabbitmq_node):
    """amqp URL of a fresh vhost with a 1 s heartbeat; the vhost outlives the stack using it."""
    with rabbitmq_vhost(rabbitmq_node) as url:
        yield f"{url}?heartbeat={HEARTBEAT_SECONDS}"


@pytest.fixture
def idle_stack(heartbeat_url, stack_factory):
    """Every service on the 1 s heartbeat vhost; one gateway worker, so that the requests after
    the idle period reach the pool that served those before it."""
    return stack_factory(RABBITMQ_URL=heartbeat_url, WEB_WORKERS="1")


def timed(request) -> tuple[float, object]:
    started = time.monotonic()
    result = request()
    return time.monotonic() - started, result


def errors_logged(stack, service: str) -> list[str]:
    """The error lines of a service's JSON log."""
    found = []
    for line in stack.processes[service].log_text().splitlines():
        if line.startswith("{") and json.loads(line).get("level") in ("error", "critical"):
            found.append(line[:300])
    return found


def test_after_idling_past_many_heartbeats_readiness_uploads_and_conversions_go_through_at_once(
        idle_stack, heartbeat_url, rabbitmq_node, mailsink, media):
    stack = idle_stack
    readyz = f"{stack.gateway_url}/readyz"
    email, jwt = stack.user()
    video = media("mkv_mp3")
    # Warm every broker connection: readiness and an upload on the gateway's pool, the job's
    # conversion and its result on the converter's, its email through notification's.
    assert requests.get(readyz, timeout=10).status_code == 200
    status, first = classic_upload(stack, jwt, video)
    assert status == 202, first
    assert wait_for_job(stack, jwt, first["job_id"])["status"] == "done"
    mailsink.wait_for(1, to=email)
    warm = rabbitmq_connections(heartbeat_url, rabbitmq_node)
    assert len(warm) >= 3, warm  # the gateway's, and the converter's and notification's

    time.sleep(IDLE_SECONDS)

    # The broker dropped none of them for missed heartbeats...
    assert rabbitmq_connections(heartbeat_url, rabbitmq_node) == warm
    # ...so readiness and an upload answer on the first try, at once.
    seconds, ready = timed(lambda: requests.get(readyz, timeout=10))
    assert ready.status_code == 200, ready.text
    assert seconds < FAST_SECONDS
    seconds, (status, second) = timed(lambda: classic_upload(stack, jwt, video))
    assert status == 202, second
    assert seconds < FAST_SECONDS
    # The converter, idle meanwhile, converts it and hands the result on, as is the email.
    assert wait_for_job(stack, jwt, second["job_id"])["status"] == "done"
    mailsink.wait_for(2, to=email)
    for service in ("gateway", "converter", "notification"):
        assert errors_logged(stack, service) == [], service
    # on the same connections throughout
    assert rabbitmq_connections(heartbeat_url, rabbitmq_node) == warm
