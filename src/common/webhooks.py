"""Webhook endpoints and their deliveries: the settings, the MongoDB collections, the Standard
Webhooks signature (https://www.standardwebhooks.com) and the ids of deliveries.

The gateway registers, lists and deletes endpoints (``gateway/webhooks.py``); notification
sends (``notification/webhooks.py``). Collections:

- ``webhooks``: one document per endpoint ``{_id, owner, url, events, secret, created_at,
  failures (consecutive failed attempts), disabled_at, disabled_reason}``;
- ``webhook_deliveries``: every attempt ``{endpoint_id, owner, webhook_id, type, at, status,
  duration, error, ok}`` (the newest WEBHOOK_DELIVERIES_KEPT per endpoint are kept);
- ``webhook_sent``: ``{_id: webhook_id, endpoint_id, at}`` once a delivery succeeded, so that a
  redelivered message never sends it again; the sweep forgets them after SENT_KEPT_SECONDS
  (a message is redelivered within minutes of its success, when its ack was lost).
"""

import base64
import hashlib
import hmac
import secrets

import pymongo
import pymongo.errors

from common import egress
from common.settings import MAX_RETRY_DELAYS, WebhookLimits, WebhookSettings
from common.store import Store, now, object_id

EVENTS = ("job.done", "job.failed", "job.expired")
TEST_EVENT = "webhook.test"
SECRET_PREFIX = "whsec_"
SENT_KEPT_SECONDS = 7 * 86400.0  # how long a delivery that succeeded is remembered
__all__ = ["MAX_RETRY_DELAYS", "WebhookLimits", "WebhookSettings", "Webhooks"]


# -- Standard Webhooks --------------------------------------------------------------------------
def new_secret() -> str:
    """A signing secret: ``whsec_`` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def signature(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header: ``v1,`` and the base64 HMAC-SHA256 of
    ``{id}.{timestamp}.{body}`` keyed by the secret's decoded bytes."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def signed_headers(secret: str, webhook_id: str, timestamp: int, body: bytes) -> dict:
    """The headers of one attempt."""
    return {"webhook-id": webhook_id, "webhook-timestamp": str(timestamp),
            "webhook-signature": signature(secret, webhook_id, timestamp, body),
            "Content-Type": "application/json", "User-Agent": "mp3converter-webhooks/1"}


def webhook_id(event_key: str, endpoint_id: str) -> str:
    """The id of one event's delivery to one endpoint: the same for the same event whoever
    computes it and however often (redelivered messages, retries), so both the sender and the
    receiver can tell a repeat."""
    digest = hashlib.sha256(f"{event_key}\n{endpoint_id}".encode()).hexdigest()
    return f"msg_{digest[:32]}"


# -- storage -------------------------------------------------------------------------------------
class Webhooks:
    """The endpoints, their deliveries and what was sent, in MongoDB."""

    def __init__(self, store: Store):
        self.endpoints = store.db["webhooks"]
        self.deliveries = store.db["webhook_deliveries"]
        self.sent = store.db["webhook_sent"]

    # endpoints
    def create(self, owner: str, url: str, events: list[str],
               at_most: int | None = None) -> dict | None:
        """Record a new endpoint of ``owner``, unless they would then have more than
        ``at_most`` (None). Recorded first, then counted, and taken back when over: of
        endpoints made at once, each one kept was counted with every one made before it, so
        the owner never has more than ``at_most`` (at worst, all those racing are refused)."""
        doc = {"owner": owner, "url": url, "events": list(events), "secret": new_secret(),
               "created_at": now(), "failures": 0, "disabled_at": None,
               "disabled_reason": None, "owner_told_at": None}
        doc["_id"] = self.endpoints.insert_one(doc).inserted_id
        if at_most is not None and self.endpoints.count_documents({"owner": owner}) > at_most:
            self.endpoints.delete_one({"_id": doc["_id"]})
            return None
        return doc

    def of_owner(self, owner: str) -> list[dict]:
        docs = list(self.endpoints.find({"owner": owner}))
        return sorted(docs, key=lambda d: (d["created_at"], str(d["_id"])))

    def get(self, endpoint_id, owner: str | None = None) -> dict | None:
        oid = object_id(endpoint_id)
        if oid is None:
            return None
        query = {"_id": oid}
        if owner is not None:
            query["owner"] = owner
        return self.endpoints.find_one(query)

    def subscribed(self, owner: str, event: str) -> list[dict]:
        """The owner's enabled endpoints that asked for ``event``."""
        return [doc for doc in self.of_owner(owner)
                if event in doc.get("events", ()) and not doc.get("disabled_at")]

    def delete(self, endpoint_id, owner: str) -> bool:
        oid = object_id(endpoint_id)
        if oid is None:
            return False
        if self.endpoints.delete_one({"_id": oid, "owner": owner}).deleted_count != 1:
            return False
        self.deliveries.delete_many({"endpoint_id": str(oid)})
        return True

    def delete_owner(self, owner: str) -> int:
        """Remove every endpoint of ``owner`` and its deliveries (a deleted account)."""
        removed = 0
        for doc in list(self.endpoints.find({"owner": owner}, {"_id": 1})):
            removed += self.delete(doc["_id"], owner)
        return removed

    # deliveries
    def was_sent(self, webhook_id: str) -> bool:
        return self.sent.find_one({"_id": webhook_id}) is not None

    def mark_sent(self, webhook_id: str, endpoint_id: str) -> None:
        try:
            self.sent.insert_one({"_id": webhook_id, "endpoint_id": endpoint_id, "at": now()})
        except pymongo.errors.DuplicateKeyError:
            pass

    def forget_sent(self, older_than: float = SENT_KEPT_SECONDS) -> int:
        """Forget the deliveries that succeeded more than ``older_than`` seconds ago."""
        return self.sent.delete_many({"at": {"$lt": now() - older_than}}).deleted_count

    def record(self, endpoint: dict, webhook_id: str, event: str, attempt: int,
               answer: egress.Answer, kept: int) -> None:
        """Record one attempt; keep the newest ``kept`` of the endpoint's."""
        endpoint_id = str(endpoint["_id"])
        self.deliveries.insert_one({
            "endpoint_id": endpoint_id, "owner": endpoint["owner"], "webhook_id": webhook_id,
            "type": event, "attempt": attempt, "at": now(), "status": answer.status,
            "duration": round(answer.duration, 3), "error": answer.error, "ok": answer.ok})
        old = list(self.deliveries.find({"endpoint_id": endpoint_id}, {"_id": 1, "at": 1}))
        if len(old) > kept:
            old.sort(key=lambda d: (d["at"], d["_id"]))
            self.deliveries.delete_many({"_id": {"$in": [d["_id"] for d in old[:-kept]]}})

    def recent(self, endpoint_id, limit: int = 50) -> list[dict]:
        docs = list(self.deliveries.find({"endpoint_id": str(endpoint_id)}))
        docs.sort(key=lambda d: (d["at"], d["_id"]), reverse=True)
        return docs[:limit]

    def succeeded(self, endpoint: dict) -> None:
        """A delivery succeeded: the endpoint's run of failures is over."""
        self.endpoints.update_one({"_id": endpoint["_id"]}, {"$set": {"failures": 0}})

    def failed(self, endpoint: dict, disable_after: int) -> bool:
        """Count a failed attempt; True when this one disabled the endpoint (its
        ``disable_after``-th failure in a row: the owner is told once)."""
        doc = self.endpoints.find_one_and_update(
            {"_id": endpoint["_id"]}, {"$inc": {"failures": 1}},
            return_document=pymongo.ReturnDocument.AFTER)
        if doc is None or doc["failures"] < disable_after:
            return False
        reason = f"{doc['failures']} deliveries in a row failed"
        result = self.endpoints.update_one({"_id": endpoint["_id"], "disabled_at": None},
                                           {"$set": {"disabled_at": now(),
                                                     "disabled_reason": reason}})
        return result.modified_count == 1

    def told(self, endpoint: dict) -> bool:
        """Record that the owner was emailed about the disabled endpoint; False when that was
        recorded already (another delivery told them)."""
        result = self.endpoints.update_one({"_id": endpoint["_id"], "owner_told_at": None},
                                           {"$set": {"owner_told_at": now()}})
        return result.modified_count == 1
