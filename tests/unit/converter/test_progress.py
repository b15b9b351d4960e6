"""The share of a pass done, when the container's declared length may be wrong: it never goes
back, never reaches the end early, and keeps moving instead of sticking at 50 % or 99 %."""

from itertools import pairwise

import pytest

from converter import progress
from converter.progress import Estimate

SIZE = 10_000_000  # bytes of the input


def _run(declared, real, linear=True, bytes_known=True, steps=20):
    """The shares reported at each twentieth of a pass over ``real`` seconds of media, read
    front to back at a steady rate, against a header that says ``declared``."""
    estimate = Estimate(declared, SIZE, linear)
    shares = []
    for step in range(1, steps + 1):
        done = step / steps
        position = round(SIZE * done) if bytes_known else None
        shares.append(estimate.update(real * done, position))
    return shares


def _non_decreasing(values):
    return all(later >= earlier for earlier, later in pairwise(values))


def test_an_honest_header_is_followed_by_time_and_the_end_is_never_claimed_early():
    shares = _run(300.0, 300.0)
    assert _non_decreasing(shares)
    assert shares[9] == pytest.approx(0.5)  # half the time, half done
    assert shares[-1] < 1.0 and shares[-1] == pytest.approx(progress.eased(1.0))


@pytest.mark.parametrize("declared", [150.0, 600.0, 100.0, 900.0])
def test_a_header_off_by_half_or_twice_gives_way_to_the_bytes_read(declared):
    """Half: time alone reaches the end half way and sticks there. Twice: it ends at half."""
    shares = _run(declared, 300.0)
    assert _non_decreasing(shares)
    for step, share in enumerate(shares[:-1], start=1):
        assert share <= step / 20 + 0.1, shares  # never far ahead of the real share
        if step >= 4:
            assert share >= step / 20 - 0.1, shares  # nor far behind, once the bytes speak
    assert shares[-1] == 1.0  # the last byte read
    assert sorted(set(shares)) == shares  # a new value at every step: it never sticks


def test_without_a_byte_count_time_past_the_declared_length_keeps_moving():
    shares = _run(150.0, 300.0, bytes_known=False)
    assert _non_decreasing(shares)
    past = shares[10:]  # after the declared 150 s
    assert all(later > earlier for earlier, later in pairwise(past)), past
    assert past[-1] < 1.0
    assert shares[9] == pytest.approx(progress.eased(1.0))


def test_a_trim_or_a_container_not_read_front_to_back_trusts_time_until_it_is_passed():
    """An MP4 may store its audio after its video: its bytes say nothing until the output
    passes the declared length; then the rest of the pass follows the rest of the file."""
    estimate = Estimate(100.0, SIZE, linear=False)
    assert estimate.update(50.0, SIZE * 9 // 10) == pytest.approx(0.5)  # bytes ignored
    before = estimate.update(102.0, SIZE * 95 // 100)  # passed, by less than the overrun
    assert before == pytest.approx(progress.eased(1.02))
    following = [estimate.update(seconds, position) for seconds, position in
                 ((110.0, SIZE * 96 // 100), (130.0, SIZE * 98 // 100), (150.0, SIZE))]
    assert _non_decreasing([before, *following]) and following[-1] == 1.0
    assert following[0] < following[1] < 1.0


def test_no_declared_length_follows_the_bytes_or_says_nothing():
    assert Estimate(None, SIZE, linear=True).update(10.0, SIZE // 4) == 0.25
    assert Estimate(None, SIZE, linear=True).update(10.0, None) is None
    assert _run(None, 300.0)[9] == pytest.approx(0.5)


def test_the_share_never_goes_back():
    estimate = Estimate(300.0, SIZE, linear=True)
    first = estimate.update(150.0, SIZE // 2)
    assert estimate.update(151.0, SIZE // 10) >= first  # a seek back in the file
    assert estimate.update(100.0, None) >= first  # an out_time going back


def test_eased_is_continuous_and_slows_down_past_the_knee():
    knee = progress.KNEE
    assert progress.eased(knee) == pytest.approx(knee)
    assert progress.eased(knee + 1e-9) == pytest.approx(knee)
    assert progress.eased(1.0) == pytest.approx(0.95)
    assert progress.eased(2.0) == pytest.approx(0.99, abs=0.002)
    assert progress.eased(10.0) < 1.0 and progress.eased(-1.0) == 0.0
