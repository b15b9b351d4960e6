"""POST /login, POST /register (forwarded to auth), GET and DELETE /account, GET /admin/usage."""

import logging

from flask import Blueprint, Response, g, request

from common import resumable
from common.apikeys import KEY_REFUSED, bearer_is_api_key
from common.web import error
from common.webhooks import Webhooks
from gateway import backends, ratelimit
from gateway.security import admin_required, login_required

bp = Blueprint("accounts", __name__)
log = logging.getLogger(__name__)
MAX_ACCOUNT_BODY = 64 * 1024


def _relay(upstream) -> Response:
    """auth's answer, passed on with its status and content type."""
    response = Response(upstream.content, status=upstream.status_code,
                        content_type=upstream.headers.get("Content-Type", "application/json"))
    if "WWW-Authenticate" in upstream.headers:
        response.headers["WWW-Authenticate"] = upstream.headers["WWW-Authenticate"]
    return response


@bp.post("/login")
@ratelimit.login_per_account
@ratelimit.login_per_address
def login():
    """HTTP Basic credentials in, the raw JWT out (text/plain)."""
    headers = {}
    if "Authorization" in request.headers:
        headers["Authorization"] = request.headers["Authorization"]
    return _relay(backends.call_auth("/login", headers=headers))


@bp.post("/register")
@ratelimit.register_per_address
def register():
    """Create an account from JSON ``{"email", "password"}``."""
    if request.content_length is None or request.content_length > MAX_ACCOUNT_BODY:
        return error(413 if request.content_length else 411,
                     f"send a JSON body of at most {MAX_ACCOUNT_BODY} bytes with Content-Length")
    body = request.get_data(cache=False)
    return _relay(backends.call_auth(
        "/register", data=body,
        headers={"Content-Type": request.headers.get("Content-Type", "application/json")}))


@bp.get("/account")
@login_required
def account():
    """The caller's address, whether it is confirmed, what they store and their limits."""
    cfg = backends.config()
    limits = cfg.limits_for(g.claims)  # the ones POST /upload applies
    usage = backends.quotas().usage(g.user)
    return {"email": g.claims.get("email"), "verified": bool(g.claims.get("verified")),
            "usage": {"bytes": usage.bytes, "active_jobs": usage.active_jobs},
            "quota": {"bytes": limits.storage_quota_bytes,
                      "active_jobs": limits.max_active_jobs},
            "jobs": usage.counts,
            "mp3_retention_hours": cfg.lifecycle.mp3_retention_seconds / 3600}


@bp.delete("/account")
@ratelimit.login_per_account
@ratelimit.login_per_address
def delete_account():
    """Delete the caller's account (confirmed by password) and every job, file and webhook they
    own."""
    if bearer_is_api_key(request.headers.get("Authorization")):
        return error(403, KEY_REFUSED)
    if request.content_length is not None and request.content_length > MAX_ACCOUNT_BODY:
        return error(413, f"send a JSON body of at most {MAX_ACCOUNT_BODY} bytes")
    headers = {"Content-Type": request.headers.get("Content-Type", "application/json")}
    if "Authorization" in request.headers:
        headers["Authorization"] = request.headers["Authorization"]
    upstream = backends.call_auth("/account", method="DELETE",
                                  data=request.get_data(cache=False), headers=headers)
    if upstream.status_code != 200:
        return _relay(upstream)
    account_id = upstream.json()["account_id"]
    try:
        removed = backends.jobs().delete_owner(account_id)
        Webhooks(backends.store()).delete_owner(account_id)
    except Exception:  # noqa: BLE001 - the account is gone; the sweep removes what is left
        log.warning("account deleted; its files are left to the sweep", exc_info=True,
                    extra={"account": account_id})
    else:
        log.info("account deleted", extra={"account": account_id, "jobs_removed": removed})
    try:
        resumable.remove_owner(backends.store(), account_id)  # its unfinished uploads
    except Exception:  # noqa: BLE001 - the sweep removes them
        log.warning("account deleted; its resumable uploads are left to the sweep",
                    exc_info=True, extra={"account": account_id})
    return "", 204


@bp.get("/admin/usage")
@login_required
@admin_required
def usage_by_owner():
    """Every user with jobs, by storage used, largest first (admins only)."""
    quotas = backends.quotas()
    rows = []
    for owner in backends.jobs().owners():
        usage = quotas.usage(owner)
        rows.append({"owner": owner, "bytes": usage.bytes, "active_jobs": usage.active_jobs,
                     "jobs": usage.counts})
    rows.sort(key=lambda row: row["bytes"], reverse=True)
    return {"users": rows}
