"""The publisher pool: a bounded number of broker connections shared by threads or greenlets."""

import json
import subprocess
import sys
import threading
import time

import pika
import pytest

from common.broker import PublisherPool
from tools.isolation import rabbitmq_connections

pytestmark = pytest.mark.integration


def drain(url: str, queue: str = "video") -> list[bytes]:
    """Every message waiting in ``queue``."""
    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel, bodies = conn.channel(), []
        while (message := channel.basic_get(queue, auto_ack=True))[0] is not None:
            bodies.append(message[2])
        return bodies
    finally:
        conn.close()


def test_many_threads_share_at_most_size_connections(fresh_vhost):
    pool = PublisherPool(fresh_vhost, max_attempts=3, size=2)

    def publish_five(i: int) -> None:
        for j in range(5):
            pool.publish("video", f"{i}-{j}".encode())

    threads = [threading.Thread(target=publish_five, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    pool.close()
    assert pool.opened <= 2
    assert sorted(drain(fresh_vhost)) == sorted(f"{i}-{j}".encode()
                                                for i in range(8) for j in range(5))


def test_a_use_while_the_keeper_beats_the_idle_connection_opens_no_other(fresh_vhost,
                                                                           monkeypatch):
    """A request that came while the keeper held the only idle Publisher (servicing its
    heartbeats) used to open a second connection; it now waits the moment and takes it back."""
    pool = PublisherPool(fresh_vhost, max_attempts=3, size=2)
    try:
        pool.publish("video", b"first")  # one connection, idle from now on
        beating, resume = threading.Event(), threading.Event()
        real = type(pool._idle[0]).keep_alive

        def slow_keep_alive(publisher):
            beating.set()
            resume.wait(5)
            real(publisher)

        monkeypatch.setattr(type(pool._idle[0]), "keep_alive", slow_keep_alive)
        keeper = threading.Thread(target=pool.keep_alive)
        keeper.start()
        assert beating.wait(5)
        threading.Timer(0.2, resume.set).start()
        pool.publish("video", b"second")  # while the keeper holds the idle one
        keeper.join(5)
    finally:
        pool.close()
    assert pool.opened == 1
    assert drain(fresh_vhost) == [b"first", b"second"]


def test_a_lent_publisher_serves_its_borrower_only(fresh_vhost):
    pool = PublisherPool(fresh_vhost, max_attempts=3, size=1)
    errors = []
    try:
        with pool.lend() as publisher:
            other = threading.Thread(
                target=lambda: errors.append(pytest.raises(AssertionError, publisher.ping)))
            other.start()
            other.join(30)
            publisher.publish("video", b"mine")
        with pytest.raises(AssertionError, match="second thread"):
            publisher.publish("video", b"kept past the block")  # given back: nobody's now
    finally:
        pool.close()
    assert len(errors) == 1
    assert drain(fresh_vhost) == [b"mine"]


def test_idle_connections_are_kept_alive_past_many_heartbeats(fresh_vhost, rabbitmq_node):
    url = f"{fresh_vhost}?heartbeat=1"  # the broker drops a silent client after ~2 s
    pool = PublisherPool(url, max_attempts=3, size=2)
    try:
        with pool.lend() as first, pool.lend() as second:  # two connections, both idle after
            first.publish("video", b"before")
            second.ping()
        opened = rabbitmq_connections(fresh_vhost, rabbitmq_node)
        time.sleep(5)
        assert rabbitmq_connections(fresh_vhost, rabbitmq_node) == opened  # the broker dropped none
        started = time.monotonic()
        pool.ping()
        pool.publish("video", b"after")
        assert time.monotonic() - started < 1
        assert rabbitmq_connections(fresh_vhost, rabbitmq_node) == opened  # on the same connections
    finally:
        pool.close()
    assert len(opened) == 2 and pool.opened == 2
    assert drain(fresh_vhost) == [b"before", b"after"]


def test_a_connection_the_broker_closed_is_reopened_on_ping_and_publish(fresh_vhost,
                                                                        rabbitmq_node):
    pool = PublisherPool(fresh_vhost, max_attempts=3, size=1)
    seen = []

    def close_every_connection() -> None:
        seen.extend(rabbitmq_connections(fresh_vhost, rabbitmq_node))
        vhost = fresh_vhost.rsplit("/", 1)[1]
        rabbitmq_node.ctl("close_all_connections", "--vhost", vhost, "closed by the test")
        time.sleep(1)

    try:
        pool.publish("video", b"before")
        close_every_connection()
        pool.ping()  # readiness: answers, on a new connection
        close_every_connection()
        pool.publish("video", b"after")  # an upload: goes through, on a new connection
        seen.extend(rabbitmq_connections(fresh_vhost, rabbitmq_node))
    finally:
        pool.close()
    assert pool.opened == 1 and len(set(seen)) == len(seen) == 3  # one Publisher, reopening
    assert drain(fresh_vhost) == [b"before", b"after"]


GREENLETS = """
from gevent import monkey
monkey.patch_all()  # as gunicorn's gevent worker does, before the app is imported
import json, sys, threading
import gevent
from common.broker import PublisherPool

pool = PublisherPool(sys.argv[1], max_attempts=3, size=3)
local = threading.local()
seen = set()

def publish(i):
    local.value = i
    pool.publish("video", str(i).encode())
    seen.add(local.value == i)

gevent.joinall([gevent.spawn(publish, i) for i in range(30)], timeout=60)
pool.close()
print(json.dumps({"opened": pool.opened, "thread_local_per_greenlet": seen == {True}}))
"""


def test_under_gevent_greenlets_share_at_most_size_connections(fresh_vhost):
    done = subprocess.run([sys.executable, "-c", GREENLETS, fresh_vhost],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    # threading.local is per greenlet once patched: one publisher per request would leak
    assert result == {"opened": 3, "thread_local_per_greenlet": True}
    assert sorted(drain(fresh_vhost), key=int) == [str(i).encode() for i in range(30)]
