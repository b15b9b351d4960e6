"""A lease in MongoDB: one holder at a time, until it expires unless its holder renews it.

One document per lease in the `leases` collection of MONGODB_DB,
``{_id: name, holder, taken_at, expires_at}`` (epoch seconds). It is taken with single-document
operations every MongoDB server runs atomically: an insert on the unique ``_id`` when there is
none, else an update that matches only an expired one. A holder that crashes stops renewing it,
and the next taker finds it expired. Expiry is read on each host's clock: hosts whose clocks
differ by a good part of the lease may overlap, which is why what runs under it stays safe to
repeat at the same time.
"""

import datetime as dt
import logging
import os
import socket
import threading
import uuid

import pymongo
import pymongo.errors
from pymongo.errors import DuplicateKeyError

from common.store import now

log = logging.getLogger(__name__)

COLLECTION = "leases"
_TAKE_ATTEMPTS = 3  # a lease released between the insert and the takeover is taken again


class LeaseHeld(Exception):
    """Another holder has the lease: ``holder`` until ``expires_at`` (epoch seconds)."""

    def __init__(self, name: str, holder: str, expires_at: float):
        super().__init__(f"another {name} holds the lease until {iso(expires_at)}")
        self.holder, self.expires_at = holder, expires_at


class LeaseLost(Exception):
    """The lease expired before it was renewed, or another holder took it over."""


def iso(moment: float) -> str:
    """Epoch seconds as an ISO 8601 UTC time to the second."""
    return dt.datetime.fromtimestamp(moment, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Lease:
    """The lease ``name`` for ``seconds``, held by this process once ``acquire`` returns."""

    def __init__(self, db, name: str, seconds: float):
        self._leases = db[COLLECTION]
        self.name = name
        self.seconds = float(seconds)
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.expires_at = 0.0
        self._lost: str | None = None
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def acquire(self) -> None:
        """Take the lease; raises LeaseHeld when another holder has it and it has not expired."""
        for _ in range(_TAKE_ATTEMPTS):
            moment = now()
            fields = {"holder": self.holder, "taken_at": moment,
                      "expires_at": moment + self.seconds}
            try:
                self._leases.insert_one({"_id": self.name, **fields})
            except DuplicateKeyError:
                before = self._leases.find_one_and_update(
                    {"_id": self.name, "expires_at": {"$lt": moment}}, {"$set": fields},
                    return_document=pymongo.ReturnDocument.BEFORE)
                if before is None:
                    current = self._leases.find_one({"_id": self.name})
                    if current is None:
                        continue  # released meanwhile: take it again
                    raise LeaseHeld(self.name, current.get("holder", "?"),
                                    float(current.get("expires_at") or 0)) from None
                log.warning("took over an expired lease", extra={
                    "lease": self.name, "previous_holder": before.get("holder"),
                    "expired_at": iso(float(before.get("expires_at") or 0))})
            self.expires_at = fields["expires_at"]
            self._lost = None
            return
        raise LeaseHeld(self.name, "?", now())

    def renew(self) -> None:
        """Push the expiry ``seconds`` from now; raises LeaseLost when another holder has it."""
        moment = now()
        renewed = self._leases.update_one(
            {"_id": self.name, "holder": self.holder},
            {"$set": {"expires_at": moment + self.seconds, "renewed_at": moment}})
        if renewed.matched_count != 1:
            self._lost = "another holder took the lease over after it expired"
            raise LeaseLost(self._lost)
        self.expires_at = moment + self.seconds

    def check(self) -> None:
        """Raise LeaseLost unless the lease is still this process's."""
        if self._lost is None and now() >= self.expires_at:
            self._lost = f"the lease expired at {iso(self.expires_at)} before it was renewed"
        if self._lost is not None:
            raise LeaseLost(self._lost)

    def release(self) -> None:
        """Stop renewing and give the lease up (if still held), so the next taker needs not
        wait for its expiry; a MongoDB that does not answer leaves it to expire."""
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
            self._renewer = None
        try:
            self._leases.delete_one({"_id": self.name, "holder": self.holder})
        except pymongo.errors.PyMongoError as exc:
            log.warning("could not release the lease; it expires by itself",
                        extra={"lease": self.name, "error": str(exc)})

    def keep_renewed(self) -> None:
        """Renew the lease every third of its length in a background thread until
        ``release``; a renewal that fails is tried again at the next turn."""
        self._stop.clear()
        self._renewer = threading.Thread(target=self._renew_loop, name=f"lease-{self.name}",
                                         daemon=True)
        self._renewer.start()

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.seconds / 3):
            try:
                self.renew()
            except LeaseLost:
                log.warning("lost the lease", extra={"lease": self.name, "reason": self._lost})
                return
            except pymongo.errors.PyMongoError as exc:
                log.warning("could not renew the lease", extra={
                    "lease": self.name, "error": str(exc),
                    "expires_at": iso(self.expires_at)})
