"""Webhook events on the real nx-27017: a job's result and its expiry become events
(common.jobs, ops.upkeep), and notification's EventHandler makes each one delivery per endpoint
that asked for it, with the job as GET /jobs/<id> shows it and, when done, a signed download
link the gateway accepts."""

import json
import urllib.parse
import uuid

import pytest
from bson import ObjectId

from common import messages
from common.consumer import Delivery
from common.jobs import Jobs
from common.jobview import job_json
from common.settings import (
    ConsumerSettings,
    MessagingSettings,
    MongoSettings,
    SmtpSettings,
)
from common.store import Store, now
from common.webhooks import Webhooks, webhook_id
from gateway.security import check_download
from notification.config import NotificationConfig
from notification.webhooks import EventHandler
from ops import upkeep

pytestmark = pytest.mark.integration

SECRET = "a download key of more than thirty-two bytes"


class Recorder:
    """A publisher that keeps what it is given: (queue, decoded body)."""

    def __init__(self):
        self.published = []

    def publish(self, queue, body, headers=None, expiration_ms=None):
        self.published.append((queue, json.loads(body)))

    def to(self, queue):
        return [body for q, body in self.published if q == queue]


@pytest.fixture
def store(mongodb_uri):
    settings = MongoSettings(mongodb_uri, f"mp3test_{uuid.uuid4().hex[:8]}")
    made = Store(settings)
    yield made
    made.client.drop_database(settings.db)
    made.close()


def _config(store) -> NotificationConfig:
    return NotificationConfig(
        smtp=SmtpSettings("127.0.0.1", 9, False, "", "", "mp3converter@localhost", 1.0),
        public_url="https://mp3.example", auth_url="http://127.0.0.1:9", auth_timeout=1.0,
        mongo=MongoSettings("mongodb://unused", "unused"),
        messaging=MessagingSettings("amqp://unused", 3, 1.0, 5.0),
        consumer=ConsumerSettings(1.0, "/tmp/unused-hb", 60.0), log_level="WARNING",
        download_url_secret=SECRET, download_url_ttl=600)


def _done_job(store, owner: str) -> dict:
    job_id, mp3_fid = ObjectId(), ObjectId()
    store.jobs.insert_one({"_id": job_id, "owner": owner, "video_fid": ObjectId(),
                           "filename": "talk.mp4", "size": 10, "options": {},
                           "status": "done", "progress": 100, "mp3_fid": mp3_fid,
                           "mp3_size": 5, "duration": 1.0, "expires_at": now() - 1,
                           "created_at": now(), "updated_at": now()})
    return store.jobs.find_one({"_id": job_id})


def _expand(store, event: messages.WebhookEvent) -> Recorder:
    recorder = Recorder()
    EventHandler(_config(store), store).handle(Delivery(
        body=messages.encode(event), headers={}, redelivered=False, attempt=1,
        publisher=recorder))
    return recorder


def test_a_done_event_goes_to_each_subscribed_enabled_endpoint_with_a_working_link(store):
    hooks = Webhooks(store)
    done = hooks.create("alice", "https://a.example/1", ["job.done"])
    both = hooks.create("alice", "https://a.example/2", ["job.done", "job.failed"])
    hooks.create("alice", "https://a.example/3", ["job.expired"])  # did not ask
    off = hooks.create("alice", "https://a.example/4", ["job.done"])
    hooks.endpoints.update_one({"_id": off["_id"]}, {"$set": {"disabled_at": now()}})
    hooks.create("bob", "https://b.example/1", ["job.done"])  # someone else's
    job = _done_job(store, "alice")
    event = messages.WebhookEvent("job.done", str(job["_id"]), "alice")

    deliveries = _expand(store, event).to("webhooks.deliver")
    assert sorted(d["endpoint_id"] for d in deliveries) == sorted([str(done["_id"]),
                                                                   str(both["_id"])])
    for d in deliveries:
        assert d["webhook_id"] == webhook_id(f"job.done:{job['_id']}", d["endpoint_id"])
    assert deliveries[0]["payload"] == deliveries[1]["payload"]  # one body for every endpoint
    payload = json.loads(deliveries[0]["payload"])
    assert payload["type"] == "job.done" and payload["timestamp"].endswith("Z")
    link = payload["data"].pop("download_url")
    payload["data"].pop("download_url_expires_at")
    assert payload["data"] == job_json(job)
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(link).query)
    assert link.startswith("https://mp3.example/download?")
    assert query["fid"] == [str(job["mp3_fid"])]
    assert check_download(SECRET, query["token"][0], str(job["mp3_fid"]), "alice")
    assert not check_download(SECRET, query["token"][0], str(job["mp3_fid"]), "bob")
    # the same event again (redelivered): the same ids, so nothing is sent twice
    again = _expand(store, event).to("webhooks.deliver")
    assert sorted(d["webhook_id"] for d in again) == sorted(d["webhook_id"] for d in deliveries)


def test_expiry_publishes_job_expired_which_carries_no_link(store):
    jobs = Jobs(store)
    job = _done_job(store, "carol")
    hook = Webhooks(store).create("carol", "https://c.example/", ["job.expired"])
    sweep = Recorder()
    assert upkeep.expire(jobs, sweep)["expired"] == 1
    [event] = sweep.to("webhooks")
    assert event == {"type": "job.expired", "job_id": str(job["_id"]), "owner": "carol"}
    [delivery] = _expand(store, messages.WebhookEvent(**event)).to("webhooks.deliver")
    payload = json.loads(delivery["payload"])
    assert delivery["endpoint_id"] == str(hook["_id"])
    assert payload["data"]["status"] == "expired" and "download_url" not in payload["data"]


def test_an_owner_without_endpoints_costs_no_lookup_of_the_job(store):
    event = messages.WebhookEvent("job.failed", str(ObjectId()), "nobody")
    assert _expand(store, event).published == []


def test_deleting_an_owners_webhooks_removes_their_deliveries_too(store):
    hooks = Webhooks(store)
    mine = hooks.create("dave", "https://d.example/", ["job.done"])
    other = hooks.create("erin", "https://e.example/", ["job.done"])
    for endpoint in (mine, other):
        hooks.deliveries.insert_one({"endpoint_id": str(endpoint["_id"]),
                                     "owner": endpoint["owner"], "at": now()})
    assert hooks.delete_owner("dave") == 1
    assert hooks.of_owner("dave") == [] and len(hooks.of_owner("erin")) == 1
    assert hooks.deliveries.count_documents({"owner": "dave"}) == 0
    assert hooks.deliveries.count_documents({"owner": "erin"}) == 1
