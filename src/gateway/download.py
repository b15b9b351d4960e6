"""GET /download: stream the caller's MP3 from GridFS, with Range support."""

import logging
import urllib.parse
from pathlib import PurePath

from flask import Blueprint, current_app, g, request
from werkzeug.http import parse_range_header
from werkzeug.wsgi import wrap_file

from common import covers, metrics
from common.gridio import FileMissing
from common.jobs import is_expired
from common.store import MP3S
from common.web import error
from gateway import backends
from gateway.jobs import expired_message
from gateway.security import check_download, login_required

bp = Blueprint("download", __name__)
log = logging.getLogger(__name__)
BUFFER_SIZE = 256 * 1024


@bp.get("/download")
def download():
    """The MP3 ``fid``, for its owner (Bearer token) or the holder of a signed URL."""
    token = request.args.get("token")
    if token is not None:
        return _send(owner=None, token=token)
    return _send_authenticated()


@login_required(scope="read")
def _send_authenticated():
    return _send(owner=g.user, token=None)


def _send(owner: str | None, token: str | None):
    """Stream the file, or the same 404 whatever is wrong: no hint whether the id exists.

    An MP3 past its retention answers 410 to its owner (or a valid link's holder) only.
    """
    fid = request.args.get("fid", "")
    store = backends.store()
    doc = store.find_file(MP3S, fid)
    if covers.is_cover(doc):  # a cover picture is served by GET /jobs/<id>/cover only
        doc = None
    job = backends.jobs().by_mp3(fid)
    # The job decides (its owner is handed over with it); a file without a job, its metadata.
    file_owner = (job or {}).get("owner") or (doc or {}).get("metadata", {}).get("owner")
    if token is not None:
        secret = backends.config().download_url_secret
        allowed = file_owner is not None and check_download(secret, token, fid, file_owner)
    else:
        allowed = file_owner is not None and file_owner == owner
    if not allowed:
        return _not_found(token)
    if job is not None and is_expired(job):
        return error(410, expired_message(job))
    if doc is None:
        return _not_found(token)
    try:
        reader = store.open_download(MP3S, doc["_id"])
    except FileMissing:  # deleted since the lookup above
        return _not_found(token)
    response = current_app.response_class(
        wrap_file(request.environ, reader, BUFFER_SIZE), mimetype="audio/mpeg",
        direct_passthrough=True)
    response.content_length = reader.length
    response.set_etag(str(doc["_id"]))
    response.headers["Content-Disposition"] = _disposition(doc.get("filename") or "audio.mp3")
    response.cache_control.private = True
    metrics.count_body_bytes(metrics.DOWNLOAD_BYTES)
    return response.make_conditional(_with_usable_range(request.environ, reader.length),
                                     accept_ranges=True, complete_length=reader.length)


def _with_usable_range(wsgi_env: dict, length: int) -> dict:
    """The request as werkzeug should see it for ranges, per RFC 9110 section 14.

    werkzeug answers 416 to whatever Range it cannot serve. But a range unit other than
    ``bytes`` must be ignored, and several ranges are ignored here too (no
    multipart/byteranges): both get the whole file, 200. A suffix range longer than the file
    (``bytes=-999999999``) means all of it: 206 ``bytes 0-(n-1)/n``. One range that starts
    at or past the end still gets 416.
    """
    value = wsgi_env.get("HTTP_RANGE")
    if value is None:
        return wsgi_env
    unit, _, ranges = value.partition("=")
    if unit.strip(" \t").lower() != "bytes" or "," in ranges:
        return {key: item for key, item in wsgi_env.items() if key != "HTTP_RANGE"}
    parsed = parse_range_header(value)
    if parsed is not None and len(parsed.ranges) == 1:
        start, end = parsed.ranges[0]
        if end is None and start < 0 and -start > length:
            return {**wsgi_env, "HTTP_RANGE": "bytes=0-"}
    return wsgi_env


def _not_found(token: str | None):
    if token is None:
        return error(404, "no such file")
    return error(404, "no such file, or this download link is invalid or has expired")


def _disposition(filename: str) -> str:
    """``attachment`` with an ASCII filename and, when needed, the UTF-8 one."""
    name = PurePath(filename).stem + ".mp3"
    ascii_name = name.encode("ascii", "replace").decode().replace('"', "'").replace("?", "_")
    value = f'attachment; filename="{ascii_name}"'
    if ascii_name != name:
        value += f"; filename*=UTF-8''{urllib.parse.quote(name)}"
    return value
