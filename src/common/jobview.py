"""How a job is shown outside: the JSON of ``GET /jobs/<id>`` (the gateway) and of a webhook
event's ``data`` (notification), and the signed download links both hand out."""

import datetime as dt
import hashlib
import json
import time
import urllib.parse

from itsdangerous import Signer

from common.options import Options


def job_json(doc: dict) -> dict:
    """The public view of a job record."""
    return {
        "job_id": str(doc["_id"]),
        "status": doc["status"],
        "filename": doc.get("filename"),
        "size": doc.get("size"),
        "progress": doc.get("progress", 0),
        "video_fid": str(doc["video_fid"]) if doc.get("video_fid") else None,
        "mp3_fid": str(doc["mp3_fid"]) if doc.get("mp3_fid") else None,
        "mp3_size": doc.get("mp3_size"),
        "duration": doc.get("duration"),
        "options": Options.from_doc(doc.get("options"), doc.get("filename")).to_doc(),
        "mode": doc.get("mode"),
        "bitrate": doc.get("bitrate"),
        "cover": doc.get("cover"),
        "chapters": doc.get("chapters"),
        "error": doc.get("error"),
        "created_at": iso(doc.get("created_at")),
        "updated_at": iso(doc.get("updated_at")),
        "expires_at": iso(doc.get("expires_at")),
    }


def iso(epoch: float | None) -> str | None:
    """Epoch seconds as an ISO 8601 UTC time with milliseconds (``...Z``)."""
    if epoch is None:
        return None
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def download_signer(secret: str, fid: str, owner: str) -> Signer:
    """Signs a link's expiry for this file and owner only: they are the salt of its key, never
    part of the URL."""
    return Signer(secret, salt=json.dumps(["download", fid, owner]), key_derivation="hmac",
                  digest_method=hashlib.sha256)


def sign_download(secret: str, fid: str, owner: str, ttl: int) -> tuple[str, int]:
    """A token that lets the holder download ``fid`` of ``owner`` until it expires:
    ``<expires>.<signature>``."""
    expires = int(time.time()) + ttl
    return download_signer(secret, fid, owner).sign(str(expires)).decode(), expires


def download_url(public_url: str, secret: str, ttl: int, fid: str, owner: str
                 ) -> tuple[str, int]:
    """The absolute signed link ``{public_url}/download?fid=&token=`` and when it expires (what
    ``GET /jobs/<id>/download-url`` answers, made absolute for a reader elsewhere)."""
    token, expires = sign_download(secret, fid, owner, ttl)
    query = urllib.parse.urlencode({"fid": fid, "token": token})
    return f"{public_url.rstrip('/')}/download?{query}", expires
