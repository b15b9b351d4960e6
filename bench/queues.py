"""The benchmark's broker chores."""

from common import topology
from common.broker import connect


def purge_video_queue(url: str) -> None:
    """Empty a vhost's `video` queue (filled by uploads and dispatches nothing consumes here)."""
    connection = connect(url)
    try:
        channel = connection.channel()
        topology.declare(channel, 3)
        channel.queue_purge(topology.VIDEO)
    finally:
        connection.close()
