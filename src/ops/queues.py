"""``python -m ops migrate``, the broker's part: the classic queues of earlier releases become
quorum queues, and none of their messages is lost.

Releases before quorum dead-letter queues kept ``<queue>.dlq`` and the delay queues
``<queue>.retry.<n>`` as classic queues, which live on one node (common.topology):

- ``<queue>.dlq`` is converted in place: its name is the work queue's own dead-letter target,
  which cannot change without the work queue being refused. Its messages move into
  ``<queue>.dlq.converting`` (a quorum queue), the empty classic queue is deleted and declared
  again as a quorum queue, and the messages move back, in their order.
- ``<queue>.retry.<n>``: each message moves into ``<queue>.delay.<n>`` (its delay starts again;
  straight into the work queue when this release makes fewer attempts), then the empty queue
  is deleted.

A message is taken off its source only once its copy is confirmed by the broker, so a run
stopped anywhere loses none: the next run finishes (at worst one message is then there twice,
which re-driving or converting again handles like any redelivery). A second run does nothing.
"""

import logging

import pika
import pika.exceptions
import pika.spec

from common import topology
from common.broker import connect

log = logging.getLogger(__name__)

ROUNDS = 5  # conversions of one dead-letter queue tried while something re-creates it as classic


class QueuesBusy(Exception):
    """A classic queue kept being written to or re-created: the earlier release still runs."""


def holding_queue(queue: str) -> str:
    """Where ``queue``'s dead letters wait while their queue is converted."""
    return f"{topology.dlq(queue)}.converting"


def migrate_queues(url: str, max_attempts: int) -> dict:
    """Convert the dead-letter queues, empty and delete the classic delay queues; the counts."""
    counts = {"dead_letter_queues_converted": 0, "dead_letters_moved": 0,
              "legacy_delay_queues_deleted": 0, "delayed_messages_moved": 0}
    connection = connect(url)
    try:
        for queue in topology.WORK_QUEUES:
            _convert_dead_letter_queue(connection, queue, counts)
        channel = connection.channel()
        topology.declare(channel, max_attempts)
        channel.close()
        for queue in topology.WORK_QUEUES:
            _empty_legacy_delay_queues(connection, queue, max_attempts, counts)
    finally:
        if connection.is_open:
            connection.close()
    log.info("queues migrated", extra=counts)
    return counts


def _convert_dead_letter_queue(connection, queue: str, counts: dict) -> None:
    name, holding = topology.dlq(queue), holding_queue(queue)
    rounds = 0
    channel = connection.channel()
    # True once it is a quorum queue (made now if it was missing)
    while not topology.declare_dead_letter_queue(channel, queue, report=False):
        if rounds == ROUNDS:
            raise QueuesBusy(f"{name} kept receiving messages or was declared as a classic "
                             "queue again: stop the earlier release's services, then run "
                             "migrate again")
        rounds += 1
        channel.queue_declare(holding, durable=True, arguments=topology.QUORUM)
        moved = _move(connection, name, holding)
        log.info("dead letters set aside", extra={"queue": name, "moved": moved})
        if _delete_if_empty(connection, name):
            counts["dead_letter_queues_converted"] += 1
    channel.close()
    if _exists(connection, holding):  # this run's, or one a stopped run left
        counts["dead_letters_moved"] += _move(connection, holding, name)
        _delete_holding(connection, holding)


def _empty_legacy_delay_queues(connection, queue: str, max_attempts: int,
                               counts: dict) -> None:
    attempt = 1
    while _exists(connection, topology.legacy_retry_queue(queue, attempt)):
        legacy = topology.legacy_retry_queue(queue, attempt)
        if attempt < max_attempts:
            moved = _move(connection, legacy, topology.retry_queue(queue, attempt))
        else:  # this release makes fewer attempts: the consumer decides at once
            moved = _move(connection, legacy, queue, keep_expiration=False)
        counts["delayed_messages_moved"] += moved
        if _delete_if_empty(connection, legacy):
            counts["legacy_delay_queues_deleted"] += 1
        else:
            raise QueuesBusy(f"{legacy} kept receiving messages: stop the earlier release's "
                             "services, then run migrate again")
        attempt += 1


def _move(connection, source: str, target: str, keep_expiration: bool = True) -> int:
    """Move every message of ``source`` to ``target``, each acknowledged only after its copy
    was confirmed; how many. On a channel of its own: a channel that used a queue keeps
    treating a queue of that name as the same kind, even once it was deleted and declared
    again as another (RabbitMQ 3.10 closes the connection)."""
    channel = connection.channel()
    channel.confirm_delivery()
    moved = 0
    while True:
        method, props, body = channel.basic_get(source, auto_ack=False)
        if method is None:
            channel.close()
            return moved
        if not keep_expiration:
            props.expiration = None
        props.delivery_mode = pika.DeliveryMode.Persistent.value
        channel.basic_publish("", target, body, props, mandatory=True)  # raises unless confirmed
        channel.basic_ack(method.delivery_tag)
        moved += 1


def _exists(connection, name: str) -> bool:
    return _done_unless_refused(connection, pika.spec.NOT_FOUND,
                                lambda channel: channel.queue_declare(name, passive=True))


def _delete_holding(connection, name: str) -> None:
    """Delete the emptied holding queue (a quorum queue: RabbitMQ refuses ``if_empty`` for
    those, and nothing but migrate writes to it)."""
    scratch = connection.channel()
    try:
        left = scratch.queue_declare(name, passive=True).method.message_count
        if left:
            raise QueuesBusy(f"{name} still holds {left} message(s) after they moved back")
        scratch.queue_delete(name)
    finally:
        if scratch.is_open:
            scratch.close()


def _delete_if_empty(connection, name: str) -> bool:
    """Delete the classic queue ``name`` unless a message arrived in it meanwhile."""
    return _done_unless_refused(connection, pika.spec.PRECONDITION_FAILED,  # not empty
                                lambda channel: channel.queue_delete(name, if_empty=True))


def _done_unless_refused(connection, refusal: int, action) -> bool:
    """Run ``action(channel)`` on a channel of its own: True, or False when the broker refuses
    it with reply code ``refusal`` (which closes that channel); any other refusal raises."""
    scratch = connection.channel()
    try:
        action(scratch)
        return True
    except pika.exceptions.ChannelClosedByBroker as exc:
        if exc.reply_code != refusal:
            raise
        return False
    finally:
        if scratch.is_open:
            scratch.close()
