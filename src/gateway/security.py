"""Who is calling: Bearer tokens checked by auth, and signed download URLs."""

import base64
import functools
import hashlib
import hmac
import time

from flask import g, request

from common.web import error
from gateway import backends


def login_required(view):
    """Let the request through only with a token auth accepts; sets ``g.user`` to the caller's
    account id (what jobs' owner, quotas and rate limits carry) and ``g.claims`` (with the
    current ``email``, ``admin`` and ``verified``)."""

    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        header = request.headers.get("Authorization")
        if not header:
            return error(401, "missing Authorization header: send 'Bearer <token>' from /login")
        response = backends.call_auth("/validate", headers={"Authorization": header})
        if response.status_code != 200:
            return error(401, _message(response, "invalid token"))
        g.claims = response.json()
        g.user = g.claims["sub"]
        return view(*args, **kwargs)

    return wrapped


def admin_required(view):
    """After ``login_required``: only for tokens of admin accounts (403 otherwise)."""

    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        if not g.claims.get("admin"):
            return error(403, "this is for administrators only")
        return view(*args, **kwargs)

    return wrapped


def _message(response, default: str) -> str:
    try:
        return response.json().get("error") or default
    except ValueError:
        return default


def _signature(secret: str, fid: str, owner: str, expires: int) -> str:
    mac = hmac.new(secret.encode(), f"{fid}\n{owner}\n{expires}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()


def sign_download(secret: str, fid: str, owner: str, ttl: int) -> tuple[str, int]:
    """A token that lets the holder download ``fid`` of ``owner`` until it expires."""
    expires = int(time.time()) + ttl
    return f"{expires}.{_signature(secret, fid, owner, expires)}", expires


def check_download(secret: str, token: str, fid: str, owner: str) -> bool:
    """True when ``token`` was signed for this file and owner and has not expired."""
    expires, _, signature = token.partition(".")
    if not (expires.isascii() and expires.isdigit() and len(expires) <= 12):
        return False  # also keeps int() away from "²" and 5000-digit numbers
    if int(expires) < time.time():
        return False
    expected = _signature(secret, fid, owner, int(expires))
    return hmac.compare_digest(signature.encode(), expected.encode())
