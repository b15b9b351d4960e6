"""The gateway app and its test client, as in the Flask tutorial, with in-memory stand-ins for
its backends (gateway.backends: auth, the MongoDB job store and quotas, the broker).

The stand-ins serve only tests of request handling that needs no server: what the gateway
answers to bad input, unknown routes, its OpenAPI document and its headers. Everything that
stores, queues or checks a password for real is tested against the real servers in
tests/integration and tests/e2e.
"""

import io
import json
import secrets

import pytest
import requests
from bson import ObjectId
from limits.storage import MemoryStorage
from limits.strategies import FixedWindowRateLimiter

from common.quotas import Quotas, Usage
from common.settings import MessagingSettings, MongoSettings
from gateway import backends, create_app, ratelimit
from gateway.config import GatewayConfig

TOKEN = "header.payload.signature"  # the one token the auth stand-in accepts
USER = "user@example.com"  # whom it belongs to
MAX_UPLOAD_BYTES = 64 * 1024


def _response(status: int, body: dict) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = json.dumps(body).encode()
    response.headers["Content-Type"] = "application/json"
    return response


class Pieces(io.RawIOBase):
    """A request stream that returns at most the next of ``sizes`` bytes per read, the way a
    slow client's body arrives (then the rest in one read); ``at`` is how far it was read."""

    def __init__(self, body: bytes, sizes=()):
        self.body, self.sizes, self.at = body, list(sizes), 0

    def read(self, n=-1):
        size = self.sizes.pop(0) if self.sizes else len(self.body)
        chunk = self.body[self.at: self.at + min(n, size)]
        self.at += len(chunk)
        return chunk


class AuthStandIn:
    """Stands in for auth's HTTP API (backends.call_auth): /validate accepts TOKEN only and
    answers anything else with auth's 401; with ``down`` set, auth does not answer at all."""

    def __init__(self):
        self.down = False
        self.calls: list[str] = []

    def __call__(self, path: str, method: str = "POST", **kwargs) -> requests.Response:
        self.calls.append(path)
        if self.down:
            raise backends.AuthUnavailable("connection refused (stand-in)")
        if path == "/validate":
            if kwargs.get("headers", {}).get("Authorization") == f"Bearer {TOKEN}":
                return _response(200, {"sub": USER, "admin": False})
            return _response(401, {"error": "invalid token (stand-in)"})
        return _response(404, {"error": "not found"})


class WriterStandIn:
    """An upload being written, kept in memory (GridWriter's interface)."""

    def __init__(self, filename: str, metadata: dict):
        self.file_id = ObjectId()
        self.filename, self.metadata = filename, metadata
        self.data = bytearray()
        self.closed = self.aborted = False

    def write(self, data: bytes) -> None:
        self.data += data

    def close(self) -> ObjectId:
        self.closed = True
        return self.file_id

    def abort(self) -> None:
        self.aborted = True


class StoreStandIn:
    """Stands in for the MongoDB store (backends.store): keeps every upload it opened."""

    def __init__(self):
        self.uploads: list[WriterStandIn] = []

    def open_upload(self, bucket: str, filename: str, metadata: dict) -> WriterStandIn:
        writer = WriterStandIn(filename, metadata)
        self.uploads.append(writer)
        return writer


class QuotasStandIn(Quotas):
    """Stands in for the quotas (backends.quotas): an owner with nothing stored or waiting,
    whose uploads always fit."""

    def __init__(self):  # no MongoDB collections
        pass

    def usage(self, owner: str) -> Usage:
        return Usage()

    def reserve(self, job_id, owner: str, size: int, max_active=None, max_bytes=None) -> Usage:
        return Usage()

    def resize(self, job_id, owner: str, size: int, max_bytes=None) -> None:
        pass

    def release(self, job_id, owner: str) -> None:
        pass


class JobsStandIn:
    """Stands in for the job store (backends.jobs): records the jobs the gateway would
    create."""

    def __init__(self):
        self.created: list[dict] = []

    def create(self, job_id, owner, video_fid, filename, content_type, size, publisher,
               options=None) -> dict:
        job = {"_id": job_id, "owner": owner, "video_fid": video_fid, "filename": filename,
               "content_type": content_type, "size": size, "options": options}
        self.created.append(job)
        return job


class PublisherStandIn:
    """Stands in for the broker connections (backends.publisher); JobsStandIn never publishes."""


class Backends:
    """The stand-ins one test's app uses."""

    def __init__(self):
        self.auth = AuthStandIn()
        self.store = StoreStandIn()
        self.jobs = JobsStandIn()
        self.quotas = QuotasStandIn()
        self.publisher = PublisherStandIn()


@pytest.fixture
def stand_ins(monkeypatch) -> Backends:
    """In-memory stand-ins in place of gateway.backends' auth, store, jobs, quotas and
    broker."""
    made = Backends()
    monkeypatch.setattr(backends, "call_auth", made.auth)
    monkeypatch.setattr(backends, "store", lambda: made.store)
    monkeypatch.setattr(backends, "jobs", lambda: made.jobs)
    monkeypatch.setattr(backends, "quotas", lambda: made.quotas)
    monkeypatch.setattr(backends, "publisher", lambda: made.publisher)
    return made


@pytest.fixture
def config() -> GatewayConfig:
    """Settings whose servers are never reached: the stand-ins answer instead."""
    return GatewayConfig(
        auth_url="http://auth.invalid", auth_timeout=1.0, max_upload_bytes=MAX_UPLOAD_BYTES,
        download_url_secret=secrets.token_urlsafe(32), download_url_ttl=60,
        mongo=MongoSettings(uri="mongodb://mongodb.invalid", db="unused"),
        messaging=MessagingSettings("amqp://rabbitmq.invalid/%2F", 3, 1.0, 5.0),
        log_level="WARNING")


@pytest.fixture
def app(config, stand_ins, monkeypatch):
    """The gateway app over the stand-ins; its rate limits count in memory."""
    app = create_app({"GATEWAY": config, "TESTING": True})
    # flask-limiter keeps its storage on the (module-wide) limiter: counted in memory for this
    # test instead of in MongoDB, and put back afterwards.
    memory = MemoryStorage()
    monkeypatch.setattr(ratelimit.limiter, "_storage", memory)
    monkeypatch.setattr(ratelimit.limiter, "_limiter", FixedWindowRateLimiter(memory))
    return app


@pytest.fixture
def client(app):
    """HTTP test client of the app."""
    return app.test_client()


@pytest.fixture
def bearer() -> dict:
    """Headers of a logged-in user."""
    return {"Authorization": f"Bearer {TOKEN}"}
