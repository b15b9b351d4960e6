"""GET /jobs, GET /jobs/<id> and signed download URLs for finished jobs."""

import datetime as dt

from flask import Blueprint, g, url_for

from common.store import DONE
from common.web import error
from gateway import backends
from gateway.security import login_required, sign_download

bp = Blueprint("jobs", __name__)


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
        "error": doc.get("error"),
        "created_at": _iso(doc.get("created_at")),
        "updated_at": _iso(doc.get("updated_at")),
    }


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


@bp.get("/jobs")
@login_required
def list_jobs():
    """The caller's jobs, newest first."""
    return {"jobs": [job_json(doc) for doc in backends.store().list_jobs(g.user)]}


@bp.get("/jobs/<job_id>")
@login_required
def get_job(job_id: str):
    """One of the caller's jobs."""
    doc = backends.store().get_job(job_id, owner=g.user)
    if doc is None:
        return error(404, "no such job")
    return job_json(doc)


@bp.get("/jobs/<job_id>/download-url")
@login_required
def download_url(job_id: str):
    """A short-lived URL that downloads the job's MP3 without an Authorization header."""
    doc = backends.store().get_job(job_id, owner=g.user)
    if doc is None:
        return error(404, "no such job")
    if doc["status"] != DONE:
        return error(409, f"the job is {doc['status']}, not done")
    cfg = backends.config()
    fid = str(doc["mp3_fid"])
    token, expires = sign_download(cfg.download_url_secret, fid, g.user, cfg.download_url_ttl)
    return {"url": url_for("download.download", fid=fid, token=token), "expires_at": expires}
