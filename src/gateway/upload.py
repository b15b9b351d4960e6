"""POST /upload: stream one multipart file into GridFS, record the job, queue it."""

import logging
import os
import time

from bson import ObjectId
from flask import Blueprint, g, request
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData

from common import metrics, options
from common.jobs import Contended, OverLimit
from common.log import bound_job
from common.store import VIDEOS
from common.units import size as human_size
from common.web import error
from gateway import backends, ratelimit, sniff
from gateway.security import login_required

bp = Blueprint("upload", __name__)
log = logging.getLogger(__name__)
READ_SIZE = 256 * 1024
FRAMING = 64 * 1024  # multipart headers and boundaries a Content-Length may hold beyond the file
ACTIVE_RETRY_SECONDS = 60  # suggested wait when too many conversions are waiting
# While a body streams in, what it is counted for is brought up to date every so many bytes or
# seconds (growing past it is checked against the storage quota), and once more at its end.
QUOTA_CHECK_BYTES = 4 * 1024 * 1024
QUOTA_CHECK_SECONDS = 5.0


class UploadRejected(Exception):
    """The request body is not acceptable; carries the HTTP status and message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class OverQuota(UploadRejected):
    """The upload, with the owner's files and other uploads in progress, passed the quota."""

    def __init__(self, used: int):
        super().__init__(413, "over the storage quota")
        self.used = used  # by everything but this upload


class QuotaWatch:
    """Keeps the count of an upload in progress up to date (``Jobs.resize``): what it was
    counted for when it began (``Jobs.reserve``: its place among the conversions waiting and
    the size its Content-Length announced) is its own; growing past it is checked against the
    storage quota, with the owner's stored files and other uploads in progress (OverQuota).
    """

    def __init__(self, jobs, job_id, owner: str, quota: int, expected: int):
        self.jobs, self.job_id, self.owner, self.quota = jobs, job_id, owner, quota
        self.expected = expected  # the file's size as the Content-Length announced it
        self.recorded = expected
        self.checked_at = time.monotonic()

    def __call__(self, size: int, final: bool = False) -> None:
        if not final and (size - self.recorded < QUOTA_CHECK_BYTES
                          and time.monotonic() - self.checked_at < QUOTA_CHECK_SECONDS):
            return
        recorded = size if final else max(size, self.expected)
        try:
            self.jobs.resize(self.job_id, self.owner, recorded, max_bytes=self.quota)
        except OverLimit as exc:
            raise OverQuota(exc.usage.bytes) from None
        self.recorded = recorded
        self.checked_at = time.monotonic()


@bp.post("/upload")
@login_required
@ratelimit.upload_per_user
def upload():
    """Accept one video as multipart field ``file``, with optional conversion options as
    text fields (``common.options``); 202 with its job id."""
    cfg = backends.config()
    boundary = request.mimetype_params.get("boundary")
    if request.mimetype != "multipart/form-data" or not boundary:
        return error(400, "send the video as multipart/form-data with a field named 'file'")
    if request.content_length and request.content_length > cfg.max_upload_bytes + FRAMING:
        return _too_large(cfg.max_upload_bytes)
    limits = cfg.limits_for(g.claims)
    jobs = backends.jobs()
    job_id = ObjectId()
    expected = max(0, (request.content_length or 0) - FRAMING)
    # Counted from here on if it fits, checked and counted at once: uploads sent in parallel
    # take the free places (and bytes) one after the other, and none past the quotas.
    try:
        usage = jobs.reserve(job_id, g.user, expected, max_active=limits.max_active_jobs,
                             max_bytes=limits.storage_quota_bytes)
    except OverLimit as exc:
        if exc.limit == "active_jobs":
            return _too_many_active(limits)
        return _over_quota(limits, exc.usage.bytes)
    except Contended:
        return _busy()
    try:
        with metrics.UPLOADS_IN_PROGRESS.track_inprogress():
            return _accept(cfg, limits, jobs, job_id, boundary, expected, usage.bytes)
    except Contended:
        return _busy()
    finally:
        try:
            jobs.release(job_id, g.user)  # already done when its job was recorded
        except Exception:  # noqa: BLE001 - no longer counted after UPLOAD_STALE_SECONDS
            log.warning("could not stop counting an upload", exc_info=True)


@bp.after_request
def _count(response):
    """Every answer to POST /upload, whoever gave it (the view, a login check, a rate limit)."""
    metrics.UPLOADS.labels("accepted" if response.status_code == 202 else "refused").inc()
    return response


def _accept(cfg, limits, jobs, job_id, boundary: str, expected: int, used: int):
    """Receive the body of an upload counted for ``expected`` bytes, the owner's other
    files and uploads using ``used``."""
    room = max(0, limits.storage_quota_bytes - used)
    store = backends.store()
    watch = QuotaWatch(jobs, job_id, g.user, limits.storage_quota_bytes, expected)
    with bound_job(str(job_id)):
        try:
            stored = _receive(request.stream, boundary.encode(), store, job_id, g.user,
                              min(cfg.max_upload_bytes, room), watch)
        except OverQuota as exc:
            return _over_quota(limits, exc.used)
        except UploadRejected as exc:
            if exc.status != 413:
                return error(exc.status, str(exc))
            if room < cfg.max_upload_bytes:
                return _over_quota(limits, used)
            return _too_large(cfg.max_upload_bytes)
        try:
            jobs.create(job_id, g.user, stored["fid"], stored["filename"],
                        stored["content_type"], stored["size"], backends.publisher(),
                        stored["options"].to_doc())
        except BaseException:
            _discard(jobs, store, job_id, stored["fid"])
            raise
        log.info("video accepted", extra={"user": g.user, "size": stored["size"],
                                          "video_fid": str(stored["fid"])})
        metrics.UPLOAD_BYTES.inc(stored["size"])
    return {"video_fid": str(stored["fid"]), "job_id": str(job_id)}, 202


def _too_large(limit: int):
    response = error(413, f"file too large: the limit is {limit} bytes")
    response.headers["Connection"] = "close"
    return response


def _over_quota(limits, used: int):
    """413: the upload does not fit in what is left of the user's storage quota."""
    quota = limits.storage_quota_bytes
    message = (f"this upload does not fit in your storage quota: you use {human_size(used)} "
               f"of {human_size(quota)}; delete some conversions or wait for their MP3s to "
               "expire")
    raised = limits.once_verified
    if raised and raised.storage_quota_bytes > quota:
        message += (f", or confirm your email address: the quota is then "
                    f"{human_size(raised.storage_quota_bytes)}")
    response = error(413, message)
    response.headers["Connection"] = "close"
    return metrics.refused_for(response, metrics.QUOTA)


def _too_many_active(limits):
    """429: the user already has as many conversions waiting as they may."""
    limit = limits.max_active_jobs
    conversions = "conversion" if limit == 1 else "conversions"
    message = f"you have {limit} {conversions} waiting or converting; try again when one finishes"
    raised = limits.once_verified
    if raised and raised.max_active_jobs > limit:
        message += (f", or confirm your email address: you may then have "
                    f"{raised.max_active_jobs} at once")
    response = error(429, message)
    response.headers["Retry-After"] = str(ACTIVE_RETRY_SECONDS)
    return metrics.refused_for(response, metrics.QUOTA)


def _busy():
    """503: too many of the user's uploads began at the same moment to count this one."""
    response = error(503, "too many of your uploads began at once; try again")
    response.headers["Retry-After"] = "1"
    return response


def _discard(jobs, store, job_id, fid) -> None:
    """Remove what an upload stored when it cannot be queued."""
    try:
        store.delete_file(VIDEOS, fid)
        jobs.delete(job_id, owner=None)
    except Exception:  # noqa: BLE001 - the sweep removes what is left
        log.warning("could not remove the unqueued upload", exc_info=True)


def _receive(stream, boundary: bytes, store, job_id, owner: str, limit: int,
             watch=None) -> dict:
    """Parse the multipart body chunk by chunk, writing the one file straight to GridFS and
    checking each option field as it completes; ``watch(size, final=False)`` hears how much
    came so far and may stop it."""
    decoder = MultipartDecoder(boundary, max_form_memory_size=2 * READ_SIZE)
    writer, head, size, filename, content_type, files = None, b"", 0, "", "", 0
    fields: dict[str, str] = {}
    field, value = None, b""  # the option field being received
    received = 0
    in_file = ended = False
    # The decoder takes a closing delimiter cut before its last "-" for file data (werkzeug
    # 3.1): the body's last bytes are held back until the end, so that it gets them at once.
    hold, held = len(boundary) + 8, b""  # "\r\n--" boundary "--\r\n"
    try:
        while True:
            event = decoder.next_event()
            if isinstance(event, NeedData):
                if ended:
                    raise UploadRejected(400, "malformed multipart body: it ends too early")
                chunk = stream.read(READ_SIZE)
                received += len(chunk)
                if received > limit + FRAMING:  # whatever the parts: a chunked body has no
                    raise UploadRejected(413, "file too large")  # Content-Length to refuse
                if chunk:
                    held += chunk
                    if len(held) > hold:
                        decoder.receive_data(held[:-hold])
                        held = held[-hold:]
                    continue
                ended = True
                if held:
                    decoder.receive_data(held)
                decoder.receive_data(None)
                continue
            if isinstance(event, Epilogue):
                break
            if isinstance(event, File):
                if event.name != "file":
                    _option_name(event.name, fields)  # 422 for a name that is no field
                    raise UploadRejected(422, f"{event.name} is a text field, not a file")
                in_file, field = True, None
                files += 1
                if files > 1:
                    raise UploadRejected(400, "send exactly one file per upload")
                filename = _clean_name(event.filename)
                content_type = event.headers.get("Content-Type", "application/octet-stream")
                continue
            if isinstance(event, Field):
                in_file = False
                if event.name == "file":
                    raise UploadRejected(400, "the field 'file' must be a file, sent with its "
                                              "name (curl: -F file=@video.mp4)")
                field, value = _option_name(event.name, fields), b""
                continue
            if isinstance(event, Data) and field is not None:
                value += event.data
                if len(value) > options.MAX_FIELD_BYTES:
                    raise UploadRejected(422, f"{field} is longer than "
                                              f"{options.MAX_FIELD_BYTES} bytes")
                if not event.more_data:
                    fields[field] = _option_value(field, value)
                    field = None
                continue
            if isinstance(event, Data) and in_file:
                size += len(event.data)
                if size > limit:
                    raise UploadRejected(413, "file too large")
                if watch is not None:
                    watch(size)
                if writer is None:
                    head += event.data
                    if not head or (len(head) < sniff.PROBE_BYTES and event.more_data):
                        continue  # an empty file is refused as such, not as "not media"
                    writer = _start_file(store, head, job_id, owner, filename, content_type)
                else:
                    writer.write(event.data)
        if files == 0:
            raise UploadRejected(400, "missing multipart field 'file'")
        try:
            chosen = options.from_fields(fields, filename)
        except options.InvalidOption as exc:
            raise UploadRejected(422, str(exc)) from None
        if writer is None:
            if not head:
                raise UploadRejected(400, "the uploaded file is empty")
            writer = _start_file(store, head, job_id, owner, filename, content_type)
        if watch is not None:
            watch(size, final=True)
        writer.close()
    except ValueError as exc:  # werkzeug raises ValueError on a malformed body
        _abort(writer)
        raise UploadRejected(400, f"malformed multipart body: {exc}") from None
    except BaseException:
        _abort(writer)
        raise
    return {"fid": writer.file_id, "filename": filename, "content_type": content_type,
            "size": size, "options": chosen}


def _option_name(name: str, seen: dict) -> str:
    """A text field's name once it is known to be an option sent for the first time."""
    try:
        options.check_field(name, "")
    except options.InvalidOption as exc:
        raise UploadRejected(422, str(exc)) from None
    if name in seen:
        raise UploadRejected(422, f"send the field {name} once")
    return name


def _option_value(name: str, raw: bytes) -> str:
    """An option field's text, checked on its own (combinations are checked at the end)."""
    try:
        text = raw.decode("utf-8")
        options.check_field(name, text)
    except UnicodeDecodeError:
        raise UploadRejected(422, f"{name} must be UTF-8 text") from None
    except options.InvalidOption as exc:
        raise UploadRejected(422, str(exc)) from None
    return text


def _start_file(store, head: bytes, job_id, owner, filename, content_type):
    """Check the first bytes, then open the GridFS file and write them."""
    if sniff.media_type(head[: sniff.PROBE_BYTES]) is None:
        raise UploadRejected(415, "this file does not look like audio or video")
    writer = store.open_upload(
        VIDEOS, filename,
        {"owner": owner, "job_id": str(job_id), "content_type": content_type})
    writer.write(head)
    return writer


def _abort(writer) -> None:
    if writer is not None:
        try:
            writer.abort()
        except Exception:  # noqa: BLE001
            log.warning("could not remove a partial upload", exc_info=True)


def _clean_name(name: str | None) -> str:
    """The file's base name without directories or control characters."""
    base = os.path.basename((name or "").replace("\\", "/"))
    base = options.clean_text(base).strip()
    return base[:255] or "video"
