"""POST, GET /tokens and DELETE /tokens/<id>: the caller's API keys, kept by auth.

Only a login token (the JWT of /login) manages keys: ``login_required`` names no scope, so an
API key gets 403 here. The secret of a new key passes through once, in the answer to POST, and
is never logged (the access log has the path only)."""

from flask import Blueprint, Response, request

from common.web import error
from gateway import backends
from gateway.security import login_required

bp = Blueprint("tokens", __name__)
MAX_BODY = 64 * 1024


def _relay(upstream) -> Response:
    """auth's answer, with its status, type and Cache-Control (no-store for a new secret)."""
    response = Response(upstream.content, status=upstream.status_code,
                        content_type=upstream.headers.get("Content-Type", "application/json"))
    if "Cache-Control" in upstream.headers:
        response.headers["Cache-Control"] = upstream.headers["Cache-Control"]
    return response


def _authorization() -> dict:
    return {"Authorization": request.headers["Authorization"]}


@bp.post("/tokens")
@login_required
def create():
    """A new API key from JSON ``{"name", "scopes", "expires_in_days"?}``; 201 with its secret."""
    if request.content_length is None or request.content_length > MAX_BODY:
        return error(413 if request.content_length else 411,
                     f"send a JSON body of at most {MAX_BODY} bytes with Content-Length")
    return _relay(backends.call_auth(
        "/tokens", data=request.get_data(cache=False),
        headers={**_authorization(),
                 "Content-Type": request.headers.get("Content-Type", "application/json")}))


@bp.get("/tokens")
@login_required
def list_keys():
    """The caller's API keys, newest first, without their secrets."""
    return _relay(backends.call_auth("/tokens", method="GET", headers=_authorization()))


@bp.delete("/tokens/<key_id>")
@login_required
def revoke(key_id: str):
    """Revoke one of the caller's keys at once; 404 for an id that is not theirs."""
    if not (len(key_id) == 16 and all(c in "0123456789abcdef" for c in key_id)):
        return error(404, "no such API key")
    return _relay(backends.call_auth(f"/tokens/{key_id}", method="DELETE",
                                     headers=_authorization()))
