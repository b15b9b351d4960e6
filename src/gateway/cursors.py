"""The opaque cursor of ``GET /jobs``: where the next page of a list starts.

A cursor is the last listed job's ``(created_at, _id)``, packed (a version byte, the epoch
seconds as a double, the 12 bytes of the ObjectId) and URL-safe base64 encoded without padding.
It is not signed: it only positions a list within the caller's own jobs (the owner filter
always applies), so an edited cursor can show nothing that page 1 would not.
"""

import base64
import math
import re
import struct

from bson import ObjectId

VERSION = 1
_FORMAT = struct.Struct(">Bd12s")
_SHAPE = re.compile(r"[A-Za-z0-9_-]{28}")  # the 21 packed bytes, which need no padding


class BadCursor(ValueError):
    """Not a cursor this gateway made."""


def encode(created_at: float, oid: ObjectId) -> str:
    """The cursor that follows the job with this ``created_at`` and ``_id``."""
    packed = _FORMAT.pack(VERSION, float(created_at), oid.binary)
    return base64.urlsafe_b64encode(packed).rstrip(b"=").decode("ascii")


def decode(cursor: str) -> tuple[float, ObjectId]:
    """The ``(created_at, _id)`` a cursor made by ``encode`` holds; BadCursor otherwise."""
    if not _SHAPE.fullmatch(cursor):
        raise BadCursor(cursor)
    version, created_at, oid = _FORMAT.unpack(base64.urlsafe_b64decode(cursor))
    if version != VERSION or not math.isfinite(created_at) or created_at < 0:
        raise BadCursor(cursor)
    return created_at, ObjectId(oid)
