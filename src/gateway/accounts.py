"""POST /login and POST /register, forwarded to auth."""

from flask import Blueprint, Response, request

from common.web import error
from gateway import backends

bp = Blueprint("accounts", __name__)
MAX_ACCOUNT_BODY = 64 * 1024


def _relay(upstream) -> Response:
    """auth's answer, passed on with its status and content type."""
    response = Response(upstream.content, status=upstream.status_code,
                        content_type=upstream.headers.get("Content-Type", "application/json"))
    if "WWW-Authenticate" in upstream.headers:
        response.headers["WWW-Authenticate"] = upstream.headers["WWW-Authenticate"]
    return response


@bp.post("/login")
def login():
    """HTTP Basic credentials in, the raw JWT out (text/plain)."""
    headers = {}
    if "Authorization" in request.headers:
        headers["Authorization"] = request.headers["Authorization"]
    return _relay(backends.call_auth("/login", headers=headers))


@bp.post("/register")
def register():
    """Create an account from JSON ``{"email", "password"}``."""
    if request.content_length is None or request.content_length > MAX_ACCOUNT_BODY:
        return error(413 if request.content_length else 411,
                     f"send a JSON body of at most {MAX_ACCOUNT_BODY} bytes with Content-Length")
    body = request.get_data(cache=False)
    return _relay(backends.call_auth(
        "/register", data=body,
        headers={"Content-Type": request.headers.get("Content-Type", "application/json")}))
