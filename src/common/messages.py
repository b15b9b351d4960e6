"""The JSON messages that travel on the `video`, `mp3`, `webhooks` and `webhooks.deliver`
queues."""

import json
from dataclasses import asdict, dataclass, fields

from common.errors import PermanentError


@dataclass(frozen=True)
class VideoMessage:
    """A video waiting to be converted."""

    job_id: str
    video_fid: str
    owner: str


@dataclass(frozen=True)
class Mp3Message:
    """A finished (``mp3_fid`` set) or failed (``error`` set) conversion."""

    job_id: str
    video_fid: str
    owner: str
    mp3_fid: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class WebhookEvent:
    """Something webhooks tell: ``type`` (``job.done``, ``job.failed``, ``job.expired``) of a
    job, for its owner's endpoints that asked for it."""

    type: str
    job_id: str
    owner: str


@dataclass(frozen=True)
class WebhookDelivery:
    """One event to one endpoint: ``webhook_id`` (the same for every attempt) and the body
    sent, made once, so every attempt sends the same bytes."""

    webhook_id: str
    endpoint_id: str
    owner: str
    type: str
    payload: str


def encode(message) -> bytes:
    """Serialise a message to JSON bytes."""
    return json.dumps(asdict(message)).encode()


def decode(cls, body: bytes):
    """Parse JSON bytes into ``cls``; anything malformed is a PermanentError."""
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise PermanentError(f"malformed message: not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise PermanentError("malformed message: not a JSON object")
    if "owner" not in doc and "username" in doc:  # published by an earlier version
        doc["owner"] = doc.pop("username")
    names = {f.name: f for f in fields(cls)}
    required = [n for n, f in names.items() if f.default is not None]
    missing = [n for n in required if not isinstance(doc.get(n), str) or not doc.get(n)]
    if missing:
        raise PermanentError(f"malformed message: missing {', '.join(missing)}")
    return cls(**{n: doc.get(n) for n in names})
