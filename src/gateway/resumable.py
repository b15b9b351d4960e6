"""Resumable uploads, the tus 1.0 protocol (https://tus.io/protocols/resumable-upload), beside
POST /upload: core, creation, creation-with-upload, termination, expiration and checksum.

``POST /uploads`` creates one (Upload-Length, Upload-Metadata with ``filename``, ``filetype``
and the conversion options of ``common.options``), ``HEAD /uploads/<id>`` says how much of it
came (Upload-Offset), ``PATCH /uploads/<id>`` appends to it, ``DELETE`` drops it, ``OPTIONS``
says what the server offers. Its id is the id of the job it becomes.

The checks are POST /upload's, made as early as each can be: the size limit and the quotas at
creation (the whole Upload-Length is reserved, until the upload expires), the options at
creation, the content check (``videos.check_head``) as soon as the first bytes have come (the
PATCH that brings them is refused 415 and the upload dropped). Bytes go into GridFS as they
arrive (``common.resumable``), in bounded memory, and survive a gateway restart; the last
byte makes the file and records the job as POST /upload does.
"""

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import logging
import tempfile
import uuid

import pymongo
import pymongo.errors
from bson import Binary, ObjectId
from flask import Blueprint, g, make_response, request
from werkzeug.http import http_date

from common import metrics, options
from common import resumable as records
from common.quotas import Contended, OverLimit
from common.store import CHUNK_SIZE, VIDEOS, now, object_id
from common.web import error
from gateway import backends, ratelimit, refusals
from gateway.refusals import UploadRejected
from gateway.security import login_required
from gateway.sniff import PROBE_BYTES
from gateway.upload import parse_option
from gateway.videos import check_head, clean_name

bp = Blueprint("resumable", __name__)
log = logging.getLogger(__name__)

TUS_VERSION = "1.0.0"
EXTENSIONS = "creation,creation-with-upload,termination,expiration,checksum"
CHECKSUMS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "md5": hashlib.md5}
OCTETS = "application/offset+octet-stream"
READ_SIZE = 256 * 1024
METADATA_MAX_BYTES = 8 * 1024
# one PATCH at a time per upload: it holds a lease, renewed as it writes; a gateway that stops
# mid-PATCH leaves it to lapse, after which the client resumes
LEASE_SECONDS = 30


class LeaseLost(Exception):
    """Another request took the upload over (this one stalled past LEASE_SECONDS)."""


@bp.after_request
def _tus_headers(response):
    response.headers["Tus-Resumable"] = TUS_VERSION
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.before_request
def _version():
    """412 for a client speaking another version of the protocol (OPTIONS excepted)."""
    if request.method != "OPTIONS" and request.headers.get("Tus-Resumable") != TUS_VERSION:
        response = error(412, f"send Tus-Resumable: {TUS_VERSION} (the tus protocol version)")
        response.headers["Tus-Version"] = TUS_VERSION
        return response
    return None


@bp.route("/uploads", methods=["OPTIONS"], provide_automatic_options=False)
@bp.route("/uploads/<upload_id>", methods=["OPTIONS"], provide_automatic_options=False)
def discover(upload_id=None):
    """What the server offers: 204 with Tus-Version, Tus-Extension, Tus-Max-Size and
    Tus-Checksum-Algorithm."""
    response = _empty(204)
    response.headers["Tus-Version"] = TUS_VERSION
    response.headers["Tus-Extension"] = EXTENSIONS
    response.headers["Tus-Max-Size"] = str(backends.config().max_upload_bytes)
    response.headers["Tus-Checksum-Algorithm"] = ",".join(CHECKSUMS)
    return response


@bp.post("/uploads", provide_automatic_options=False)
@login_required(scope="upload")
@ratelimit.upload_per_user
def create():
    """Create an upload of Upload-Length bytes: 201 with its Location (and, with a body of
    ``application/offset+octet-stream``, its first bytes appended)."""
    cfg = backends.config()
    if request.headers.get("Upload-Defer-Length"):
        return error(400, "send Upload-Length: this server does not accept a deferred length")
    length = _whole(request.headers.get("Upload-Length"))
    if length is None:
        return error(400, "send Upload-Length: the file's size in bytes")
    if length == 0:
        return error(400, "the uploaded file is empty")
    if length > cfg.max_upload_bytes:
        return refusals.too_large(cfg.max_upload_bytes)
    raw = request.headers.get("Upload-Metadata", "")
    try:
        filename, content_type, chosen = _metadata(raw)
    except UploadRejected as exc:
        return error(exc.status, str(exc))
    except options.InvalidOption as exc:
        return error(422, str(exc))
    limits, upload_id = cfg.limits_for(g.claims), ObjectId()
    moment = now()
    expires = moment + cfg.resumable_upload_expiry_hours * 3600
    try:
        backends.quotas().reserve(upload_id, g.user, length, limits.max_active_jobs,
                                  limits.storage_quota_bytes, until=expires)
    except OverLimit as exc:
        return refusals.not_admitted(exc, limits)
    except Contended:
        return refusals.busy()
    doc = {"_id": upload_id, "owner": g.user, "fid": ObjectId(), "filename": filename,
           "content_type": content_type, "options": chosen.to_doc(), "metadata": raw,
           "length": length, "offset": 0, "tail": Binary(b""), "checked": False,
           "created_at": moment, "expires_at": expires, "lease": None, "lease_until": 0,
           "completed_at": None}
    try:
        records.collection(backends.store()).insert_one(doc)
    except BaseException:
        backends.quotas().release(upload_id, g.user)
        raise
    log.info("resumable upload created", extra={"user": g.user, "size": length,
                                               "upload_id": str(upload_id)})
    location = f"/uploads/{upload_id}"
    if request.mimetype == OCTETS:
        try:
            response = _append(doc, 0, status=201)
        except BaseException:
            _forget(doc)
            raise
        if response.status_code != 201:  # the client has no Location to resume with
            _forget(doc)
    else:
        response = _empty(201)
        response.headers["Upload-Offset"] = "0"
    if response.status_code == 201:
        response.headers["Location"] = location
        response.headers["Upload-Expires"] = http_date(expires)
    return response


@bp.route("/uploads/<upload_id>", methods=["HEAD"], provide_automatic_options=False)
@login_required(scope="upload")
def status(upload_id):
    """How much of the upload came: Upload-Offset (and Upload-Length, Upload-Expires)."""
    doc = _find(upload_id)
    if doc is None:
        return _empty(404)
    response = _empty(200)
    response.headers["Upload-Offset"] = str(doc["offset"])
    response.headers["Upload-Length"] = str(doc["length"])
    if doc.get("metadata"):
        response.headers["Upload-Metadata"] = doc["metadata"]
    if doc.get("completed_at") is None:
        response.headers["Upload-Expires"] = http_date(doc["expires_at"])
    return response


@bp.patch("/uploads/<upload_id>", provide_automatic_options=False)
@login_required(scope="upload")
def append(upload_id):
    """Append the body at Upload-Offset (which must be how much came: 409 otherwise); 204
    with the new Upload-Offset. The last byte makes the job (its id is the upload's)."""
    if request.mimetype != OCTETS:
        return error(415, f"send the bytes as Content-Type: {OCTETS}")
    offset = _whole(request.headers.get("Upload-Offset"))
    if offset is None:
        return error(400, "send Upload-Offset: where these bytes go in the file")
    doc = _find(upload_id)
    if doc is None:
        return error(404, "no such upload (or it expired)")
    return _append(doc, offset, status=204)


@bp.delete("/uploads/<upload_id>", provide_automatic_options=False)
@login_required(scope="upload")
def terminate(upload_id):
    """Drop an unfinished upload and what came of it: 204."""
    doc = _find(upload_id)
    if doc is None or doc.get("completed_at") is not None:
        return error(404, "no such unfinished upload")
    records.discard(backends.store(), doc)
    return _empty(204)


def _forget(doc: dict) -> None:
    """Drop an upload whose creation-with-upload failed (its client never learnt its URL)."""
    try:
        records.discard(backends.store(), doc)
    except Exception:  # noqa: BLE001 - it expires, and the sweep removes it
        log.warning("could not drop a resumable upload", exc_info=True)


def _empty(status: int):
    """An empty answer."""
    response = make_response("", status)
    response.headers.pop("Content-Type", None)
    return response


def _whole(value: str | None) -> int | None:
    """A header's non-negative whole number, or None."""
    if value is None or not value.isascii() or not value.isdigit() or len(value) > 18:
        return None
    return int(value)


def _find(upload_id) -> dict | None:
    """The caller's upload, not expired; None for another user's, unknown or expired ones."""
    oid = object_id(upload_id)
    if oid is None:
        return None
    # without its partial last chunk (up to a chunk's size): only the request that appends,
    # under the lease, reads it
    doc = records.collection(backends.store()).find_one({"_id": oid}, {"tail": 0})
    if doc is None or doc["owner"] != g.user or doc["expires_at"] < now():
        return None
    return doc


def _metadata(raw: str):
    """The file's name, its type and its conversion options from Upload-Metadata (``key
    base64value`` pairs separated by commas): UploadRejected 400 when it is malformed,
    InvalidOption (422) for an option, exactly as POST /upload's form fields."""
    if len(raw.encode()) > METADATA_MAX_BYTES:
        raise UploadRejected(400, f"Upload-Metadata is over {METADATA_MAX_BYTES} bytes")
    values: dict[str, bytes] = {}
    for pair in filter(None, (item.strip() for item in raw.split(","))):
        key, _, encoded = pair.partition(" ")
        if not key or key in values:
            raise UploadRejected(400, "Upload-Metadata: each key once, as 'key base64value'")
        try:
            values[key] = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise UploadRejected(
                400, f"Upload-Metadata: the value of {key} is not base64") from None
    try:
        filename = values.pop("filename", b"video").decode()
        content_type = values.pop("filetype", b"application/octet-stream").decode()
    except UnicodeDecodeError:
        raise UploadRejected(400, "Upload-Metadata: filename and filetype must be UTF-8") from None
    filename = clean_name(filename)
    content_type = options.clean_text(content_type).strip()[:255] or "application/octet-stream"
    fields: dict[str, object] = {}
    for name, value in values.items():
        if len(value) > options.MAX_FIELD_BYTES:
            raise options.InvalidOption(f"{name} is longer than {options.MAX_FIELD_BYTES} "
                                        "bytes")
        parse_option(fields, name, value)
    return filename, content_type, options.combine(fields, filename)


def _append(doc: dict, offset: int, status: int):
    """Receive the request's body at ``offset`` of the upload ``doc``, under its lease."""
    store = backends.store()
    uploads = records.collection(store)
    if doc.get("completed_at") is not None:
        return error(409, "this upload is complete")
    if offset != doc["offset"]:
        response = error(409, f"Upload-Offset is {offset} but the server has {doc['offset']} "
                              "bytes of this upload: resume from there (HEAD)")
        response.headers["Upload-Offset"] = str(doc["offset"])
        return response
    remaining = doc["length"] - offset
    count = request.content_length
    if count is not None and count > remaining:
        return error(413, f"the body is {count} bytes but only {remaining} are left of "
                          "Upload-Length")
    checksum = None
    if request.headers.get("Upload-Checksum"):
        algorithm, _, digest = request.headers["Upload-Checksum"].strip().partition(" ")
        if algorithm not in CHECKSUMS:
            return error(400, f"Upload-Checksum: the algorithms are {', '.join(CHECKSUMS)}")
        try:
            checksum = (CHECKSUMS[algorithm](), base64.b64decode(digest.strip(), validate=True))
        except (binascii.Error, ValueError):
            return error(400, "Upload-Checksum: the digest must be base64")
    token = uuid.uuid4().hex
    leased = uploads.find_one_and_update(
        {"_id": doc["_id"], "offset": offset, "completed_at": None,
         "lease_until": {"$lt": now()}},
        {"$set": {"lease": token, "lease_until": now() + LEASE_SECONDS}},
        return_document=pymongo.ReturnDocument.AFTER)
    if leased is None:
        return error(423, "another request is appending to this upload; try again shortly")
    receiver = _Receiver(store, leased, token)
    try:
        body = request.stream
        size = count  # None: a chunked body, read to its end
        try:
            if checksum is not None:
                # nothing is stored before the checksum matched: the body waits on disk
                body, size = receiver.spool(body, size, remaining, checksum[0]), None
                if not hmac.compare_digest(checksum[0].digest(), checksum[1]):
                    response = error(460, "Checksum Mismatch: the bytes received do not match "
                                          "Upload-Checksum; send them again")
                    response.headers["Upload-Offset"] = str(offset)
                    return response
            done = receiver.receive(body, size, remaining)
        except UploadRejected as exc:
            if exc.status == 415:  # not media: nothing of it is kept
                records.discard(store, leased)
                log.info("resumable upload refused", extra={"user": g.user,
                                                            "reason": str(exc)})
            return error(exc.status, str(exc))
        except LeaseLost as exc:
            return error(423, str(exc))
        finally:
            if body is not request.stream:
                body.close()
        if done:
            _complete(store, receiver)
    finally:
        uploads.update_one({"_id": doc["_id"], "lease": token},
                           {"$set": {"lease": None, "lease_until": 0}})
    response = _empty(status)
    response.headers["Upload-Offset"] = str(receiver.offset)
    if receiver.doc.get("completed_at") is None:
        response.headers["Upload-Expires"] = http_date(doc["expires_at"])
    else:
        response.headers["Upload-Job-Id"] = str(doc["_id"])
    return response


class _Receiver:
    """One PATCH's bytes into GridFS chunks: each full chunk is written as it fills and the
    offset reached recorded at once; the rest waits in the record's ``tail``. A chunk is never
    written twice (nx-27017 can neither replace nor delete one chunk of a file): one found
    already there, written by a PATCH that stopped before recording it, is kept (the client
    sends the same bytes again from the recorded offset)."""

    def __init__(self, store, doc: dict, token: str):
        self._chunks, self._uploads = store.chunks(VIDEOS), records.collection(store)
        self.doc, self._token = doc, token
        self._buffer = bytearray(doc.get("tail") or b"")
        self._n = doc["offset"] // CHUNK_SIZE  # the chunk the buffer begins
        self._first = self._n  # the one chunk an earlier PATCH may have written
        self._checked = bool(doc.get("checked"))
        self._renewed = now()

    @property
    def offset(self) -> int:
        return self._n * CHUNK_SIZE + len(self._buffer)

    def spool(self, stream, count: int | None, remaining: int, hasher):
        """The whole body, hashed, into a temporary file (bounded memory); none of it is kept
        if it ends early."""
        spooled = tempfile.SpooledTemporaryFile(max_size=CHUNK_SIZE)
        received = 0
        try:
            while count is None or received < count:
                want = READ_SIZE if count is None else min(READ_SIZE, count - received)
                data = stream.read(want)
                if not data:
                    if count is None:  # a chunked body: its end
                        break
                    raise UploadRejected(400, "the body ended before its Content-Length")
                received += len(data)
                if received > remaining:
                    raise UploadRejected(413, "the body goes past Upload-Length")
                hasher.update(data)
                spooled.write(data)
                self._keep_lease()
        except BaseException:
            spooled.close()
            raise
        spooled.seek(0)
        return spooled

    def receive(self, stream, count: int | None, remaining: int) -> bool:
        """Read the body (``count`` bytes; None: to its end); True when the file is then
        complete. A client that goes away keeps what came; more than ``remaining`` is 413."""
        received = 0
        try:
            while count is None or received < count:
                want = READ_SIZE if count is None else min(READ_SIZE, count - received)
                data = stream.read(want)
                if not data:
                    break
                received += len(data)
                if received > remaining:
                    raise UploadRejected(413, "the body goes past Upload-Length")
                self._buffer += data
                if not self._checked:
                    self._sniff(self._buffer)
                self._flush()
        except (UploadRejected, LeaseLost):
            raise
        except Exception:
            self.save()  # the client went away or stalled: what came stays
            raise
        complete = self.offset == self.doc["length"]
        if not self._checked:
            self._sniff(self._buffer, final=complete)
        self.save()
        return complete

    def _sniff(self, head, final: bool = False) -> None:
        """POST /upload's content check, once the first PROBE_BYTES (or the whole file) came."""
        wanted = min(PROBE_BYTES, self.doc["length"])
        if len(head) >= wanted or final:
            check_head(bytes(head[:wanted]))
            self._checked = True

    def _keep_lease(self) -> None:
        if now() - self._renewed > LEASE_SECONDS / 3:
            self._renew()

    def _flush(self) -> None:
        self._keep_lease()
        while len(self._buffer) >= CHUNK_SIZE:
            self._renew()
            self.write_chunk(self._n, bytes(self._buffer[:CHUNK_SIZE]))
            del self._buffer[:CHUNK_SIZE]
            self._n += 1
            self.save()

    def write_chunk(self, n: int, data: bytes) -> None:
        """Insert chunk ``n`` unless a PATCH that stopped before recording it wrote it."""
        fid = self.doc["fid"]
        if n == self._first and self._chunks.find_one(
                {"files_id": fid, "n": {"$gte": n, "$lt": n + 1}}, {"n": 1}) is not None:
            return
        self._chunks.insert_one({"files_id": fid, "n": n, "data": Binary(data)})

    def _renew(self) -> None:
        moment = now()
        if not self._uploads.update_one(
                {"_id": self.doc["_id"], "lease": self._token},
                {"$set": {"lease_until": moment + LEASE_SECONDS}}).matched_count:
            raise LeaseLost("another request took this upload over; resume from its offset")
        self._renewed = moment

    def save(self) -> None:
        """Record the offset reached and the tail (under the lease)."""
        update = {"offset": self.offset, "tail": Binary(bytes(self._buffer)),
                  "checked": self._checked, "lease_until": now() + LEASE_SECONDS}
        if not self._uploads.update_one({"_id": self.doc["_id"], "lease": self._token},
                                        {"$set": update}).matched_count:
            raise LeaseLost("another request took this upload over; resume from its offset")
        self._renewed = now()
        self.doc.update(update)

    def rollback(self) -> None:
        """Report the offset of the last chunk's start: the client sends the end again."""
        self._n = (self.doc["length"] - 1) // CHUNK_SIZE
        self._buffer = bytearray()
        self._first = self._n
        self.save()

    def write_tail(self) -> None:
        """The last, incomplete chunk (once every byte came)."""
        if self._buffer:
            self._first = self._n  # written already by a completion that failed after it
            self.write_chunk(self._n, bytes(self._buffer))


def _complete(store, receiver: _Receiver) -> None:
    """Every byte came: make the GridFS file and record its job as POST /upload does. When
    the job cannot be recorded (the broker is down: 503), the upload goes back to its last
    chunk boundary (``rollback``), so that a client resuming sends its end again, and that
    PATCH tries again (its chunks are there already, and are kept)."""
    doc = receiver.doc
    job_id, owner = doc["_id"], doc["owner"]
    receiver.write_tail()
    metadata = {"owner": owner, "job_id": str(job_id), "content_type": doc["content_type"]}
    try:
        store.files(VIDEOS).insert_one({
            "_id": doc["fid"], "length": doc["length"], "chunkSize": CHUNK_SIZE,
            "uploadDate": dt.datetime.now(dt.UTC), "filename": doc["filename"],
            "metadata": metadata})
    except pymongo.errors.DuplicateKeyError:
        pass  # written by a completion that failed afterwards
    jobs = backends.jobs()
    try:
        jobs.create(job_id, owner, doc["fid"], doc["filename"], doc["content_type"],
                    doc["length"], backends.publisher(), doc["options"])
    except BaseException:
        try:
            jobs.delete(job_id, owner=None)
            receiver.rollback()
        except Exception:  # noqa: BLE001 - the next try records it again
            log.warning("could not remove the unqueued job", exc_info=True)
        raise
    backends.quotas().release(job_id, owner)
    moment = now()
    records.collection(store).update_one({"_id": job_id},
                                         {"$set": {"completed_at": moment, "tail": Binary(b"")}})
    doc["completed_at"] = moment
    log.info("video accepted", extra={"user": owner, "size": doc["length"],
                                      "video_fid": str(doc["fid"]), "resumable": True})
    metrics.UPLOAD_BYTES.inc(doc["length"])
    metrics.UPLOADS.labels("accepted").inc()
