"""POST /upload: stream one multipart file into GridFS, record the job, queue it."""

import logging
import os

from bson import ObjectId
from flask import Blueprint, g, request
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData

from common import messages, topology
from common.log import bound_job
from common.store import now
from common.web import error
from gateway import backends, sniff
from gateway.security import login_required

bp = Blueprint("upload", __name__)
log = logging.getLogger(__name__)
READ_SIZE = 256 * 1024


class UploadRejected(Exception):
    """The request body is not acceptable; carries the HTTP status and message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@bp.post("/upload")
@login_required
def upload():
    """Accept one video as multipart field ``file``; 202 with its job id."""
    cfg = backends.config()
    boundary = request.mimetype_params.get("boundary")
    if request.mimetype != "multipart/form-data" or not boundary:
        return error(400, "send the video as multipart/form-data with a field named 'file'")
    if request.content_length and request.content_length > cfg.max_upload_bytes + 64 * 1024:
        return _too_large(cfg.max_upload_bytes)
    store = backends.store()
    job_id = ObjectId()
    with bound_job(str(job_id)):
        try:
            stored = _receive(request.stream, boundary.encode(), store, job_id, g.user,
                              cfg.max_upload_bytes)
        except UploadRejected as exc:
            if exc.status == 413:
                return _too_large(cfg.max_upload_bytes)
            return error(exc.status, str(exc))
        try:
            store.create_job(job_id, g.user, stored["fid"], stored["filename"],
                             stored["content_type"], stored["size"])
            message = messages.VideoMessage(str(job_id), str(stored["fid"]), g.user)
            backends.publisher().publish(topology.VIDEO, messages.encode(message))
        except BaseException:
            _discard(store, job_id, stored["fid"])
            raise
        try:
            store.update_job(job_id, {"published_at": now()})
        except Exception:  # noqa: BLE001 - the job is queued; at worst the sweep re-sends it
            log.warning("could not record the publish time", exc_info=True)
        log.info("video accepted", extra={"user": g.user, "size": stored["size"],
                                          "video_fid": str(stored["fid"])})
    return {"video_fid": str(stored["fid"]), "job_id": str(job_id)}, 202


def _too_large(limit: int):
    response = error(413, f"file too large: the limit is {limit} bytes")
    response.headers["Connection"] = "close"
    return response


def _discard(store, job_id, fid) -> None:
    """Remove what an upload stored when it cannot be queued."""
    try:
        store.delete_file("videos", fid)
        store.delete_job(job_id)
    except Exception:  # noqa: BLE001 - the sweep removes what is left
        log.warning("could not remove the unqueued upload", exc_info=True)


def _receive(stream, boundary: bytes, store, job_id, owner: str, limit: int) -> dict:
    """Parse the multipart body chunk by chunk, writing the one file straight to GridFS."""
    decoder = MultipartDecoder(boundary, max_form_memory_size=2 * READ_SIZE)
    writer, head, size, filename, content_type, files = None, b"", 0, "", "", 0
    in_file = ended = False
    try:
        while True:
            event = decoder.next_event()
            if isinstance(event, NeedData):
                if ended:
                    raise UploadRejected(400, "malformed multipart body: it ends too early")
                chunk = stream.read(READ_SIZE)
                ended = not chunk
                decoder.receive_data(chunk or None)
                continue
            if isinstance(event, Epilogue):
                break
            if isinstance(event, File):
                in_file = event.name == "file"
                if in_file:
                    files += 1
                    if files > 1:
                        raise UploadRejected(400, "send exactly one file per upload")
                    filename = _clean_name(event.filename)
                    content_type = event.headers.get("Content-Type", "application/octet-stream")
                continue
            if isinstance(event, Field):
                in_file = False
                continue
            if isinstance(event, Data) and in_file:
                size += len(event.data)
                if size > limit:
                    raise UploadRejected(413, "file too large")
                if writer is None:
                    head += event.data
                    if len(head) < sniff.PROBE_BYTES and event.more_data:
                        continue
                    writer = _start_file(store, head, job_id, owner, filename, content_type)
                else:
                    writer.write(event.data)
        if files == 0:
            raise UploadRejected(400, "missing multipart field 'file'")
        if writer is None:
            if not head:
                raise UploadRejected(400, "the uploaded file is empty")
            writer = _start_file(store, head, job_id, owner, filename, content_type)
        writer.close()
    except ValueError as exc:  # werkzeug raises ValueError on a malformed body
        _abort(writer)
        raise UploadRejected(400, f"malformed multipart body: {exc}") from None
    except BaseException:
        _abort(writer)
        raise
    return {"fid": writer.file_id, "filename": filename, "content_type": content_type, "size": size}


def _start_file(store, head: bytes, job_id, owner, filename, content_type):
    """Check the first bytes, then open the GridFS file and write them."""
    if sniff.media_type(head[: sniff.PROBE_BYTES]) is None:
        raise UploadRejected(415, "this file does not look like audio or video")
    writer = store.open_upload(
        "videos", filename,
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
    base = "".join(ch for ch in base if ch.isprintable()).strip()
    return base[:255] or "video"
