"""POST /upload: stream one multipart file into GridFS, record the job, queue it."""

import logging

from bson import ObjectId
from flask import Blueprint, g, request

from common import metrics, options
from common.log import bound_job
from common.quotas import Contended, OverLimit
from common.store import VIDEOS
from common.web import error
from gateway import backends, multipart, ratelimit, refusals
from gateway.multipart import FRAMING
from gateway.refusals import UploadRejected
from gateway.security import login_required
from gateway.videos import Video

bp = Blueprint("upload", __name__)
log = logging.getLogger(__name__)


@bp.post("/upload")
@login_required(scope="upload")
@ratelimit.upload_per_user
def upload():
    """Accept one video as multipart field ``file``, with optional conversion options as
    text fields (``common.options``); 202 with its job id."""
    cfg = backends.config()
    boundary = request.mimetype_params.get("boundary")
    if request.mimetype != "multipart/form-data" or not boundary:
        return error(400, "send the video as multipart/form-data with a field named 'file'")
    if request.content_length and request.content_length > cfg.max_upload_bytes + FRAMING:
        return refusals.too_large(cfg.max_upload_bytes)
    limits, job_id = cfg.limits_for(g.claims), ObjectId()
    expected = max(0, (request.content_length or 0) - FRAMING)
    try:
        # Counted from here on if it fits, checked and counted at once: uploads sent in parallel
        # take the free places (and bytes) one after the other, and none past the quotas.
        with (backends.quotas().admit(job_id, g.user, expected, limits.max_active_jobs,
                                      limits.storage_quota_bytes) as admission,
              metrics.UPLOADS_IN_PROGRESS.track_inprogress(), bound_job(str(job_id))):
            return _accept(cfg, limits, admission, job_id, boundary.encode())
    except OverLimit as exc:
        return refusals.not_admitted(exc, limits)
    except Contended:
        return refusals.busy()


@bp.after_request
def _count(response):
    """Every answer to POST /upload, whoever gave it (the view, a login check, a rate limit)."""
    metrics.UPLOADS.labels("accepted" if response.status_code == 202 else "refused").inc()
    return response


def _accept(cfg, limits, admission, job_id, boundary: bytes):
    """Receive the body of an upload the quotas admitted, then record and queue its job."""
    used = admission.usage.bytes  # by the owner's other files and uploads
    room = max(0, limits.storage_quota_bytes - used)
    store, jobs = backends.store(), backends.jobs()
    try:
        stored = _receive(request.stream, boundary, store, job_id, g.user,
                          min(cfg.max_upload_bytes, room), admission.check)
    except options.InvalidOption as exc:
        return error(422, str(exc))
    except (UploadRejected, multipart.Unreadable) as exc:
        if exc.status != 413:
            return error(exc.status, str(exc))
        if room < cfg.max_upload_bytes:
            return refusals.over_quota(limits, used)
        return refusals.too_large(cfg.max_upload_bytes)
    try:
        jobs.create(job_id, g.user, stored["fid"], stored["filename"], stored["content_type"],
                    stored["size"], backends.publisher(), stored["options"].to_doc())
    except BaseException:
        _discard(jobs, store, job_id, stored["fid"])
        raise
    log.info("video accepted", extra={"user": g.user, "size": stored["size"],
                                      "video_fid": str(stored["fid"])})
    metrics.UPLOAD_BYTES.inc(stored["size"])
    return {"video_fid": str(stored["fid"]), "job_id": str(job_id)}, 202


def _receive(stream, boundary: bytes, store, job_id, owner: str, limit: int, check) -> dict:
    """Read the body's parts as they come: each option field checked when it is complete
    (InvalidOption), the one file of at most ``limit`` bytes written straight to GridFS;
    ``check(size, final=False)`` hears how much of it came so far and may stop it."""
    fields: dict[str, object] = {}
    video, size = None, 0
    try:
        for event in multipart.read(stream, boundary, limit + FRAMING, options.MAX_FIELD_BYTES):
            if isinstance(event, multipart.Chunk):
                size += len(event.data)
                if size > limit:
                    raise UploadRejected(413, "file too large")
                check(size)
                video.write(event.data, event.last)
            elif isinstance(event, multipart.File):
                if event.name != "file":
                    parse_option(fields, event.name, b"")  # 422 for a name that is no field
                    raise options.InvalidOption(f"{event.name} is a text field, not a file")
                if video is not None:
                    raise UploadRejected(400, "send exactly one file per upload")
                video = Video(store, job_id, owner, event.filename, event.content_type)
            elif event.name == "file":
                raise UploadRejected(400, "the field 'file' must be a file, sent with its "
                                          "name (curl: -F file=@video.mp4)")
            else:
                parse_option(fields, event.name, event.value)
        if video is None:
            raise UploadRejected(400, "missing multipart field 'file'")
        chosen = options.combine(fields, video.filename)
        video.start()
        check(size, final=True)
        fid = video.close()
    except BaseException:
        if video is not None:
            video.abort()
        raise
    return {"fid": fid, "filename": video.filename, "content_type": video.content_type,
            "size": size, "options": chosen}


def parse_option(fields: dict, name: str, raw: bytes) -> None:
    """Parse an option field into ``fields``; InvalidOption naming it (sent twice too)."""
    if name in fields:
        raise options.InvalidOption(f"send the field {name} once")
    fields[name] = options.parse_field(name, raw)


def _discard(jobs, store, job_id, fid) -> None:
    """Remove what an upload stored when it cannot be queued."""
    try:
        store.delete_file(VIDEOS, fid)
        jobs.delete(job_id, owner=None)
    except Exception:  # noqa: BLE001 - the sweep removes what is left
        log.warning("could not remove the unqueued upload", exc_info=True)

