"""A declaration that races another client's creation of the same quorum queue.

RabbitMQ cannot be made to lose this race on demand (tests/integration/common/
test_topology_declare.py starts 16 declarers at once and saw none; a stack's start in CI did),
so the broker here is a stand-in, named as such: it answers the first declaration of one queue
with the 404 RabbitMQ 3.10 sends then, and closes that channel, as RabbitMQ does.
"""

import pika.exceptions
import pytest

from common import topology

RACE = ("NOT_FOUND - home node 'rabbit@localhost' of durable queue 'video.long.delay.1' in "
        "vhost 'v' is down or inaccessible")


class StandInChannel:
    """A stand-in for a pika channel (no broker)."""

    def __init__(self, broker: "StandInBroker"):
        self.broker, self.is_open = broker, True
        self.connection = broker

    def queue_declare(self, queue, durable, arguments):
        assert self.is_open, "declared on a closed channel"
        refusal = self.broker.refusals.get(queue)
        if refusal:
            self.broker.refusals[queue] = refusal[1:]
            self.is_open = False
            raise pika.exceptions.ChannelClosedByBroker(*refusal[0])
        self.broker.declared.append(queue)

    def close(self):
        self.is_open = False


class StandInBroker:
    """A stand-in for a pika connection: hands out channels, counts declarations."""

    def __init__(self, refusals: dict):
        self.refusals, self.declared, self.channels = refusals, [], 0

    def channel(self) -> StandInChannel:
        self.channels += 1
        return StandInChannel(self)


@pytest.fixture(autouse=True)
def _no_pause(monkeypatch):
    monkeypatch.setattr(topology, "DECLARE_PAUSE_SECONDS", 0)


def test_a_queue_being_created_by_another_client_is_declared_again():
    broker = StandInBroker({"video.long.delay.1": [(404, RACE), (404, RACE)]})
    topology.declare(broker.channel(), 3)
    assert broker.declared.count("video.long.delay.1") == 1
    assert "video.long.delay.2" in broker.declared  # and every queue after it


def test_a_queue_that_stays_unreachable_is_an_error_after_a_few_tries():
    broker = StandInBroker({"video": [(404, RACE)] * topology.DECLARE_TRIES})
    with pytest.raises(pika.exceptions.ChannelClosedByBroker):
        topology.declare(broker.channel(), 3)


@pytest.mark.parametrize("refusal", [(404, "NOT_FOUND - no queue 'x'"),
                                     (406, "PRECONDITION_FAILED - inequivalent arg")])
def test_any_other_refusal_is_raised_at_once(refusal):
    broker = StandInBroker({"video": [refusal]})
    with pytest.raises(pika.exceptions.ChannelClosedByBroker):
        topology.declare(broker.channel(), 3)
    assert "video" not in broker.declared
