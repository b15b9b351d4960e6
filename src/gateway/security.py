"""Who is calling: Bearer tokens checked by auth, and signed download URLs."""

import base64
import functools
import hashlib
import hmac
import time

from flask import g, request
from itsdangerous import BadSignature

from common.jobview import download_signer as _signer
from common.jobview import sign_download
from common.web import error
from gateway import backends

__all__ = ["admin_required", "check_download", "login_required", "sign_download"]


def login_required(view=None, *, scope: str | None = None):
    """Let the request through only with a token auth accepts; sets ``g.user`` to the caller's
    account id (what jobs' owner, quotas and rate limits carry) and ``g.claims`` (with the
    current ``email``, ``admin`` and ``verified``; ``key`` for an API key).

    A login token (the JWT of /login) opens every route. An API key (``mp3k_...``) opens only
    routes that name the ``scope`` they need (``@login_required(scope="read")``), and only when
    the key has it: auth answers 403 naming the scope it lacks, and 403 on routes that name
    none (the account and its keys). auth is asked at every request, so a revoked key is
    refused at once."""
    if view is None:
        return functools.partial(login_required, scope=scope)

    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        header = request.headers.get("Authorization")
        if not header:
            return error(401, "missing Authorization header: send 'Bearer <token>' from /login")
        response = backends.call_auth("/validate", headers={"Authorization": header},
                                      params={"scope": scope} if scope else None)
        if response.status_code == 403:
            return error(403, _message(response, "this API key may not do this"))
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


def check_download(secret: str, token: str, fid: str, owner: str) -> bool:
    """True when ``token`` was signed for this file and owner and has not expired."""
    try:
        expires = _signer(secret, fid, owner).unsign(token).decode()
    except BadSignature:
        return _check_previous_format(secret, token, fid, owner)
    return _unexpired(expires)


def _unexpired(expires: str) -> bool:
    if not (expires.isascii() and expires.isdigit() and len(expires) <= 12):
        return False  # also keeps int() away from "²" and 5000-digit numbers
    return int(expires) >= time.time()


# The previous format (mp3converter 0.1.0, until December 2026): the same "<expires>.<signature>",
# signed with HMAC-SHA256 of "<fid>\n<owner>\n<expires>" under the bare secret. Accepted until
# such a link expires, so that one handed out just before an upgrade keeps working; none outlives
# DOWNLOAD_URL_TTL_SECONDS (default 15 minutes) after the upgrade. Remove in the next release,
# from January 2027, with its test in tests/unit/gateway/test_security.py.
def _check_previous_format(secret: str, token: str, fid: str, owner: str) -> bool:
    expires, _, signature = token.partition(".")
    if not _unexpired(expires):
        return False
    mac = hmac.new(secret.encode(), f"{fid}\n{owner}\n{int(expires)}".encode(), hashlib.sha256)
    expected = base64.urlsafe_b64encode(mac.digest()).rstrip(b"=")
    return hmac.compare_digest(signature.encode(), expected)
