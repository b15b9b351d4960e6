"""GET /verify (the link in the verification email) and POST /verify/resend, via auth."""

from flask import Blueprint, Response, redirect, request

from common.web import error
from gateway import backends
from gateway.security import login_required

bp = Blueprint("verify", __name__)
# Where a browser lands after following the link: the page shows the matching message.
PAGE_ANCHORS = {200: "verified", 410: "verify-expired"}


@bp.get("/verify")
def verify():
    """Confirm the address of the emailed token: JSON, or a redirect to the page for browsers."""
    browser = _wants_html()
    token = request.args.get("token", "")
    if not token:
        if browser:
            return _to_page("verify-failed")
        return error(400, "missing token: open the link from the verification email as it is")
    try:
        upstream = backends.call_auth("/verify", json={"token": token})
    except backends.AuthUnavailable:
        if browser:
            return _to_page("verify-unavailable")
        raise
    if browser:
        return _to_page(PAGE_ANCHORS.get(upstream.status_code, "verify-failed"))
    return Response(upstream.content, status=upstream.status_code,
                    content_type=upstream.headers.get("Content-Type", "application/json"))


@bp.post("/verify/resend")
@login_required
def resend():
    """Email the caller a fresh verification link."""
    upstream = backends.call_auth(
        "/verify/resend", headers={"Authorization": request.headers["Authorization"]})
    response = Response(upstream.content, status=upstream.status_code,
                        content_type=upstream.headers.get("Content-Type", "application/json"))
    if "Retry-After" in upstream.headers:
        response.headers["Retry-After"] = upstream.headers["Retry-After"]
    return response


def _wants_html() -> bool:
    """True for a browser (it prefers HTML); curl's */* gets JSON."""
    accept = request.accept_mimetypes
    return accept.best_match(["application/json", "text/html"]) == "text/html"


def _to_page(anchor: str):
    """303 to the web page, which shows the message for ``anchor``; the token stays behind."""
    response = redirect(f"/#{anchor}", code=303)
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    return response
