"""Password hashing with argon2id, a bounded number of hashes at once per process.

Each argon2 operation (hash or verify) holds ``memory_cost`` KiB for its whole run: with
argon2-cffi's defaults (argon2id, time_cost 3, memory_cost 65536 KiB = 64 MiB, parallelism 4)
that is 64 MiB, so memory grows with the number of concurrent logins unless it is bounded. At
most ``ARGON2_MAX_CONCURRENT`` operations run at once in a process; the others wait up to
``ARGON2_QUEUE_SECONDS`` for a slot and then fail with PasswordsBusy (answered 503).
"""

import contextlib
import math
import threading

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from common import metrics

_hasher = PasswordHasher()
# Verified against when the email is unknown, so both failures take the same time.
_DUMMY_HASH = _hasher.hash("not a real password")
MEMORY_BYTES = _hasher.memory_cost * 1024  # what one argon2 operation allocates


class PasswordsBusy(Exception):
    """Every argon2 slot stayed taken for the whole wait; try again after ``retry_after`` s."""

    def __init__(self, retry_after: int):
        super().__init__(f"no argon2 slot free; retry after {retry_after} s")
        self.retry_after = retry_after


class Slots:
    """At most ``size`` argon2 operations at once; a caller waits ``wait_seconds`` at most."""

    def __init__(self, size: int, wait_seconds: float):
        self.size = size
        self.wait_seconds = wait_seconds
        self.retry_after = max(1, math.ceil(wait_seconds))
        self._semaphore = threading.BoundedSemaphore(size)

    def __enter__(self) -> "Slots":
        if not self._semaphore.acquire(timeout=self.wait_seconds):
            metrics.PASSWORD_HASH_REFUSALS.inc()
            raise PasswordsBusy(self.retry_after)
        return self

    def __exit__(self, *exc) -> None:
        self._semaphore.release()


# Sized for auth's pod (384Mi, WEB_WORKERS=2): 2 processes x 1 x 64 MiB over ~96 MiB idle. Its
# CPU limit (500m) leaves nothing for a second hash at once to gain. Measured under 50 concurrent
# bad logins: 226 MiB peak (unbounded, 16 at once: 1124 MiB).
DEFAULT_MAX_CONCURRENT = 1
DEFAULT_QUEUE_SECONDS = 2.0
_slots = Slots(DEFAULT_MAX_CONCURRENT, DEFAULT_QUEUE_SECONDS)


def configure(max_concurrent: int, queue_seconds: float) -> None:
    """Size this process's argon2 slots (called by create_app from AuthConfig)."""
    global _slots
    _slots = Slots(max_concurrent, queue_seconds)


def slots() -> Slots:
    """This process's argon2 slots."""
    return _slots


@contextlib.contextmanager
def _measured():
    """Count the argon2 operation while it runs and record how long it took."""
    with metrics.PASSWORD_HASHES_IN_PROGRESS.track_inprogress(), \
            metrics.PASSWORD_HASH_DURATION.time():
        yield


def hash_password(password: str) -> str:
    """An argon2id hash of ``password``; raises PasswordsBusy when no slot frees in time."""
    with slots(), _measured():
        return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when ``password`` matches; a None hash still costs one verification.

    Raises PasswordsBusy when no slot frees in time.
    """
    with slots(), _measured():
        try:
            return (_hasher.verify(password_hash or _DUMMY_HASH, password)
                    and password_hash is not None)
        except (VerificationError, InvalidHashError):
            return False
