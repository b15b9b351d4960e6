"""GET /jobs, GET and DELETE /jobs/<id>, a finished job's cover picture, and signed download
URLs for finished jobs."""

from flask import Blueprint, Response, g, jsonify, request, url_for

from common import covers
from common.jobs import Status, is_expired
from common.jobview import iso, job_json
from common.web import error
from gateway import backends, cursors
from gateway.security import login_required, sign_download

__all__ = ["bp", "expired_message", "iso", "job_json"]

bp = Blueprint("jobs", __name__)
MAX_PAGE = 200  # jobs in one answer of GET /jobs, at most
DEFAULT_PAGE = 200  # when no limit is given: what GET /jobs answered before it had pages


@bp.get("/jobs")
@login_required(scope="read")
def list_jobs():
    """A page of the caller's jobs, newest first, and the cursor of the next page (or null)."""
    limit = _limit(request.args.get("limit", ""))
    if limit is None:
        return error(400, f"limit must be a whole number from 1 to {MAX_PAGE}")
    after = None
    if cursor := request.args.get("cursor", ""):
        try:
            after = cursors.decode(cursor)
        except cursors.BadCursor:
            return error(400, "cursor is not valid: pass the next of an earlier "
                              "GET /jobs answer unchanged, or leave it out for the newest jobs")
    docs, more = backends.jobs().page(g.user, limit, after)
    following = cursors.encode(docs[-1]["created_at"], docs[-1]["_id"]) if more else None
    response = jsonify({"jobs": [job_json(doc) for doc in docs], "next": following})
    if following:
        link = url_for("jobs.list_jobs", limit=limit, cursor=following)
        response.headers["Link"] = f'<{link}>; rel="next"'
    return response


def _limit(text: str) -> int | None:
    """The page size asked (``DEFAULT_PAGE`` when not given), or None when out of range."""
    if not text:
        return DEFAULT_PAGE
    if not text.isascii() or not text.isdigit() or len(text) > 4:
        return None
    return int(text) if 1 <= int(text) <= MAX_PAGE else None


@bp.get("/jobs/<job_id>")
@login_required(scope="read")
def get_job(job_id: str):
    """One of the caller's jobs."""
    doc = backends.jobs().get(job_id, owner=g.user)
    if doc is None:
        return error(404, "no such job")
    return job_json(doc)


@bp.delete("/jobs/<job_id>")
@login_required(scope="delete")
def delete_job(job_id: str):
    """Delete one of the caller's jobs with its video and MP3; a conversion in progress stops."""
    if not backends.jobs().delete(job_id, g.user, backends.publisher()):
        return error(404, "no such job")
    return "", 204


@bp.get("/jobs/<job_id>/cover")
@login_required(scope="read")
def cover(job_id: str):
    """The front-cover picture embedded in the job's MP3 (a JPEG), from its cover file."""
    doc, refused = _finished(job_id)
    if refused is not None:
        return refused
    # A job of an earlier release has no cover file until `python -m ops migrate` makes it.
    picture = covers.load(backends.store(), doc.get("cover_fid")) if doc.get("cover") else None
    if picture is None:
        return error(404, "this MP3 has no cover picture")
    response = Response(picture, mimetype="image/jpeg")
    response.headers["Cache-Control"] = "private, max-age=3600"
    return response


@bp.get("/jobs/<job_id>/download-url")
@login_required(scope="read")
def download_url(job_id: str):
    """A short-lived URL that downloads the job's MP3 without an Authorization header."""
    doc, refused = _finished(job_id)
    if refused is not None:
        return refused
    cfg = backends.config()
    fid = str(doc["mp3_fid"])
    token, expires = sign_download(cfg.download_url_secret, fid, g.user, cfg.download_url_ttl)
    return {"url": url_for("download.download", fid=fid, token=token), "expires_at": expires}


def _finished(job_id: str):
    """(the caller's done job, None) or (None, the error answer: 404, 409 or 410)."""
    doc = backends.jobs().get(job_id, owner=g.user)
    if doc is None:
        return None, error(404, "no such job")
    if is_expired(doc):
        return None, error(410, expired_message(doc))
    if doc["status"] != Status.DONE:
        return None, error(409, f"the job is {doc['status']}, not done")
    return doc, None


def expired_message(doc: dict) -> str:
    """What a person is told about an MP3 past its retention (``is_expired``), from any view."""
    return (f"this MP3 expired on {iso(doc.get('expires_at'))} and has been deleted; "
            "upload the video again to convert it once more")
