"""Queue topology: retry delays grow and are jittered."""

import pytest

from common import topology


@pytest.mark.parametrize("attempt, base, cap", [(1, 5, 300), (2, 5, 300), (3, 1, 5),
                                                (4, 2, 300), (10, 5, 300), (30, 5, 300)])
def test_retry_delay_is_jittered_within_half_to_full_ceiling(attempt, base, cap):
    ceiling = min(cap, base * 2 ** (attempt - 1))
    delays = [topology.retry_delay(attempt, base, cap) for _ in range(300)]
    assert all(ceiling / 2 <= d <= ceiling for d in delays)
    assert max(delays) - min(delays) > ceiling / 10  # jittered, not constant


def test_retry_delay_doubles_then_caps():
    assert max(topology.retry_delay(1, 5, 300) for _ in range(200)) <= 5
    assert min(topology.retry_delay(3, 5, 300) for _ in range(200)) >= 10
    assert max(topology.retry_delay(12, 5, 300) for _ in range(200)) <= 300
    assert min(topology.retry_delay(12, 5, 300) for _ in range(200)) >= 150
