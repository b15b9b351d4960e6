"""A three-node RabbitMQ cluster loses one node at a time, and nothing is lost.

A publisher (common.broker.Publisher, with the broker's confirms) sends a steady stream of
numbered messages to `video`; two consumer processes of the real Consumer loop, given every
node in RABBITMQ_URL, record each message they handle. Each node in turn is stopped (the
queue's leader, the node holding the consumers, the last one killed as by a crash) and started
again. Every confirmed message is handled; a message is handled twice only when the broker
redelivered it (its ack was lost with a connection) or the publisher sent it twice (the
connection it was first sent on died before the broker confirmed it); the consumers stall for
seconds, not minutes; every queue keeps a member on each node. The counts and the longest
stall around each outage are printed (``-s``).
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from common import topology
from common.broker import Publisher, connect
from common.errors import RetryableError
from tests.integration.common.test_topology_declare import DECLARED
from tools.isolation import rabbitmq_vhost
from tools.processes import Process

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

PUBLISH_INTERVAL = 0.05  # 20 messages a second
HANDLE_SECONDS = 0.02  # between recording a message and its ack: a lost connection redelivers
DOWN_SECONDS = 4  # how long each node stays down while the stream goes on
MAX_STALL_SECONDS = 10

# One consumer process: the service's Consumer loop with a handler that records each message.
CONSUMER = """
import json, sys, time
from common import log as jsonlog
from common.consumer import Consumer, Handler
from common.settings import ConsumerSettings, MessagingSettings

url, out, beat = sys.argv[1:4]

class Record(Handler):
    queue = "video"

    def handle(self, delivery):
        with open(out, "a") as fh:
            fh.write(json.dumps({"n": int(delivery.body), "redelivered": delivery.redelivered,
                                 "at": time.time()}) + "\\n")
        time.sleep(HANDLE_SECONDS)

jsonlog.configure("cluster-consumer", "INFO")
sys.exit(Consumer(Record(), MessagingSettings(url, 3, 1.0, 5.0),
                  ConsumerSettings(10.0, beat, 60.0)).run())
""".replace("HANDLE_SECONDS", str(HANDLE_SECONDS))


class CountingPublisher(Publisher):
    """A Publisher that counts the connections it gave up: a publish that closed one sent the
    message a second time, the first copy unconfirmed but maybe kept."""

    closed = 0

    def close(self) -> None:
        self.closed += 1
        super().close()


class Stream:
    """Publishes numbered messages, one every PUBLISH_INTERVAL, until stopped."""

    def __init__(self, url: str):
        self.publisher = CountingPublisher(url, 3)
        self.confirmed: set[int] = set()
        self.unconfirmed: set[int] = set()  # refused or cut off: may or may not be there
        self.resent: set[int] = set()  # sent again after the first copy got no confirm
        self.slowest = 0.0  # the longest publish, confirm included
        self.errors: Counter = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stream", daemon=True)

    def start(self) -> Stream:
        self._thread.start()
        return self

    def _run(self) -> None:
        self.publisher.claim()
        number = 0
        while not self._stop.is_set():
            number += 1
            began, closed = time.monotonic(), self.publisher.closed
            try:
                self.publisher.publish(topology.VIDEO, str(number).encode())
                self.confirmed.add(number)
            except RetryableError as exc:
                self.unconfirmed.add(number)
                self.errors[str(exc)[:60]] += 1
            if self.publisher.closed != closed:
                self.resent.add(number)
            self.slowest = max(self.slowest, time.monotonic() - began)
            self._stop.wait(max(0.0, PUBLISH_INTERVAL - (time.monotonic() - began)))
        self.publisher.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)


def _consumer(tmp_path: Path, url: str, index: int) -> tuple[Process, Path]:
    out = tmp_path / f"handled-{index}.jsonl"
    env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ}
    process = Process(f"cluster-consumer-{index}",
                      [sys.executable, "-c", CONSUMER, url, str(out),
                       str(tmp_path / f"consumer-{index}.heartbeat")],
                      env, tmp_path / f"consumer-{index}.log")
    return process.start(), out


def _handled(outputs: list[Path]) -> list[dict]:
    rows = []
    for path in outputs:
        if path.exists():
            rows.extend(json.loads(line) for line in path.read_text().splitlines() if line)
    return sorted(rows, key=lambda row: row["at"])


def _queues(cluster, vhost: str) -> dict[str, dict]:
    out = cluster.ctl("list_queues", "-p", vhost, "name", "type", "leader", "members", "online",
                      "--formatter", "json")
    return {queue["name"]: queue for queue in json.loads(out)}


def _consumer_nodes(cluster, vhost: str) -> Counter:
    """How many consumers of the vhost each node holds: the channels consuming, by the node
    port their connection reached (a channel is named "client:port -> node:port (n)")."""
    nodes = {node.port: node.nodename for node in cluster.nodes}
    out = cluster.ctl("list_channels", "name", "vhost", "consumer_count", "--formatter", "json")
    return Counter(nodes[int(re.search(r"-> \S+:(\d+)", row["name"]).group(1))]
                   for row in json.loads(out) if row["vhost"] == vhost and row["consumer_count"])


def _wait_replicated(cluster, vhost: str, timeout: float = 60) -> dict[str, dict]:
    """The vhost's queues once each has an online member on every node."""
    everyone = set(cluster.nodenames)
    deadline = time.monotonic() + timeout
    while True:
        queues = _queues(cluster, vhost)
        if all(set(q["members"]) == everyone and set(q["online"]) == everyone
               for q in queues.values()):
            return queues
        assert time.monotonic() < deadline, f"queues not back on every node: {queues}"
        time.sleep(0.5)


def _longest_gap(times: list[float], start: float, end: float) -> float:
    """The longest time without a handled message between ``start`` and ``end``."""
    inside = [start, *(t for t in times if start < t < end), end]
    return max(b - a for a, b in zip(inside, inside[1:], strict=False))


def test_losing_any_one_node_loses_no_message_and_stalls_the_consumers_for_seconds(
        rabbitmq_cluster, tmp_path):
    cluster = rabbitmq_cluster
    with rabbitmq_vhost("mp3test", cluster) as url:
        vhost = url.split(",")[0].rsplit("/", 1)[1]
        connection = connect(url)
        topology.declare(connection.channel(), 3)
        connection.close()
        queues = _wait_replicated(cluster, vhost)
        assert {q["type"] for q in queues.values()} == {"quorum"}, queues
        assert set(queues) == DECLARED

        consumers = [_consumer(tmp_path, url, index) for index in (1, 2)]
        outputs = [out for _, out in consumers]
        stream = Stream(url).start()
        outages = []
        try:
            deadline = time.monotonic() + 30
            while len(_consumer_nodes(cluster, vhost)) == 0 or len(_handled(outputs)) < 20:
                assert time.monotonic() < deadline, "the consumers never started"
                time.sleep(0.2)
            stopped: set[str] = set()
            for turn in range(len(cluster.nodes)):
                leader = _queues(cluster, vhost)["video"]["leader"]
                holding = _consumer_nodes(cluster, vhost)
                left = [n for n in cluster.nodes if n.nodename not in stopped]
                if turn == 0:  # the queue's leader
                    node = next(n for n in left if n.nodename == leader)
                else:  # the node holding the most consumers (the last one: whichever is left)
                    node = max(left, key=lambda n: holding.get(n.nodename, 0))
                stopped.add(node.nodename)
                began = time.time()
                if turn == len(cluster.nodes) - 1:
                    node.process.kill()  # a crash: no goodbye to the clients or the peers
                else:
                    node.stop()
                time.sleep(DOWN_SECONDS)
                node.start()
                _wait_replicated(cluster, vhost)
                outages.append({"node": node.nodename, "leader": node.nodename == leader,
                                "consumers": holding.get(node.nodename, 0),
                                "crash": turn == len(cluster.nodes) - 1,
                                "began": began, "ended": time.time()})
                time.sleep(2)
        finally:
            stream.stop()
        try:
            deadline = time.monotonic() + 60
            while not stream.confirmed <= {row["n"] for row in _handled(outputs)}:
                assert time.monotonic() < deadline, "confirmed messages never handled"
                time.sleep(0.5)
            time.sleep(2)  # late redeliveries
            for process, _ in consumers:
                assert process.alive, f"a consumer exited:\n{process.log_tail()}"
        finally:
            for process, _ in consumers:
                process.terminate(20)

        rows = _handled(outputs)
        deliveries = defaultdict(list)
        for row in rows:
            deliveries[row["n"]].append(row)
        lost = stream.confirmed - set(deliveries)
        # A message handled twice: the broker redelivered it (flagged) after the connection
        # that held it unacked was lost, or the publisher sent it again when the connection
        # it was sent on died before the broker confirmed it.
        redelivered = sum(1 for found in deliveries.values() for r in found[1:]
                          if r["redelivered"])
        twice = {n: found for n, found in deliveries.items()
                 if len(found) > 1 and not all(r["redelivered"] for r in found[1:])}
        unexplained = {n: found for n, found in twice.items() if n not in stream.resent}
        times = [row["at"] for row in rows]
        for outage in outages:
            outage["stall"] = round(_longest_gap(times, outage["began"] - 1,
                                                 outage["ended"] + 2), 2)
        report = {"published": len(stream.confirmed) + len(stream.unconfirmed),
                  "confirmed": len(stream.confirmed),
                  "unconfirmed": len(stream.unconfirmed),
                  "unconfirmed_handled": len(stream.unconfirmed & set(deliveries)),
                  "publish_errors": dict(stream.errors),
                  "handled": len(rows), "redelivered": redelivered,
                  "sent_again": len(stream.resent), "sent_again_handled_twice": len(twice),
                  "slowest_publish": round(stream.slowest, 2),
                  "cluster_start_seconds": round(cluster.start_seconds or 0, 1),
                  "outages": [{k: v for k, v in o.items() if k not in ("began", "ended")}
                              for o in outages]}
        print(json.dumps(report))
        assert not lost, f"confirmed but never handled: {sorted(lost)[:20]} {report}"
        assert not unexplained, f"handled twice, neither redelivered nor sent twice: " \
                                f"{unexplained} {report}"
        assert any(o["leader"] for o in outages) and any(o["consumers"] for o in outages), report
        assert all(o["stall"] <= MAX_STALL_SECONDS for o in outages), report
        assert len(stream.confirmed) > 20 * len(outages) * DOWN_SECONDS, report
        queues = _wait_replicated(cluster, vhost)
        assert {q["type"] for q in queues.values()} == {"quorum"}, queues
