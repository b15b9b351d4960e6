"""HTTP endpoints of auth: login, register, email verification, validate, API keys, health."""

import logging
import smtplib

from flask import Blueprint, current_app, request

from auth import apikeys, db, passwords, tokens, verification
from auth.validation import ValidationFailed, check_credentials
from common import metrics
from common.addresses import try_canonical
from common.apikeys import KEY_REFUSED, SCOPES, is_api_key
from common.errors import PermanentError
from common.web import error

bp = Blueprint("auth", __name__)
log = logging.getLogger(__name__)


class KeyNotAllowed(Exception):
    """An API key was sent where only a login token will do (403)."""


@bp.errorhandler(KeyNotAllowed)
def _key_not_allowed(_exc):
    return error(403, KEY_REFUSED)


def login_account_id() -> str:
    """The account id of the request's Bearer login token; raises InvalidToken, and
    KeyNotAllowed for an API key (account and key management need the password's login)."""
    token = tokens.bearer(request.headers.get("Authorization"))
    if is_api_key(token):
        raise KeyNotAllowed()
    return tokens.decode(current_app.config["AUTH"].jwt_secret, token)["sub"]


@bp.errorhandler(db.MySQLdb.OperationalError)
@bp.errorhandler(db.MySQLdb.InterfaceError)
def _database_down(exc):
    log.warning("database unavailable", extra={"error": str(exc)})
    return error(503, "user database unavailable, try again shortly")


@bp.errorhandler(passwords.PasswordsBusy)
def _passwords_busy(exc):
    log.warning("argon2 slots busy", extra={"retry_after": exc.retry_after})
    unit = "second" if exc.retry_after == 1 else "seconds"
    response = error(503, "the server is busy checking other passwords; "
                          f"try again in {exc.retry_after} {unit}")
    response.headers["Retry-After"] = str(exc.retry_after)
    return response


@bp.post("/login")
def login():
    """HTTP Basic credentials in, a raw JWT (text/plain) out."""
    creds = request.authorization
    if creds is None or creds.type != "basic" or not creds.username or creds.password is None:
        metrics.LOGINS.labels("bad_credentials").inc()
        return _unauthorized("missing HTTP Basic credentials")
    email = try_canonical(creds.username)
    user = db.find_user(email) if email else None
    try:
        matches = passwords.verify_password(user["password_hash"] if user else None,
                                            creds.password)
    except passwords.PasswordsBusy:
        metrics.LOGINS.labels("busy").inc()
        raise
    if not matches:
        metrics.LOGINS.labels("bad_credentials").inc()
        return _unauthorized("invalid email or password")
    metrics.LOGINS.labels("ok" if user["verified"] else "unverified").inc()
    config = current_app.config["AUTH"]
    token = tokens.issue(config.jwt_secret, user, config.jwt_ttl_seconds)
    log.info("login", extra={"account": user["account_id"]})
    return token, 200, {"Content-Type": "text/plain; charset=utf-8"}


@bp.post("/register")
def register():
    """Create an unverified account from JSON ``{"email", "password"}`` and email its link."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return error(400, 'expected a JSON object {"email": ..., "password": ...}')
    try:
        email = check_credentials(body.get("email"), body.get("password"))
        account_id = db.insert_user(email, body["password"])
    except ValidationFailed as exc:
        return error(422, str(exc))
    except db.EmailTaken:
        return error(409, "an account with this email already exists")
    failure = _send_verification(account_id, email)
    if failure is not None:
        db.delete_unverified(account_id)  # nothing was kept: the person can simply try again
        return failure
    log.info("registered", extra={"account": account_id})
    return {"email": email}, 201


@bp.post("/verify")
def verify():
    """Confirm the address in JSON ``{"token"}``, the token of an emailed link."""
    body = request.get_json(silent=True)
    token = body.get("token") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        return error(400, 'expected a JSON object {"token": ...} from the verification link')
    try:
        account_id, email = tokens.decode_verify(current_app.config["AUTH"].jwt_secret, token)
    except tokens.ExpiredToken:
        log.info("verification link expired")
        return error(410, "this verification link has expired: log in and ask for a new one")
    except tokens.InvalidToken as exc:
        log.info("verification link refused", extra={"reason": str(exc)})
        return error(400, "this verification link is not valid: use the link from the latest "
                          "email exactly as it is")
    if not db.mark_verified(account_id, email):
        return error(400, "this verification link is for an account that no longer exists or "
                          "no longer has this address")
    log.info("email verified", extra={"account": account_id})
    return {"email": email, "verified": True}


@bp.post("/verify/resend")
def resend_verification():
    """Email a fresh verification link to the Bearer token's user, at most once per cooldown."""
    try:
        account_id = login_account_id()
    except tokens.InvalidToken as exc:
        return _unauthorized(str(exc))
    cooldown = current_app.config["AUTH"].verify_resend_seconds
    wait = db.claim_resend(account_id, cooldown)
    account = db.find_account(account_id)
    if account is None:
        return error(404, "this account no longer exists")
    if wait is not None:
        if account["verified"]:
            return error(409, "this email address is already confirmed")
        unit = "second" if wait == 1 else "seconds"
        response = error(429, f"a verification email was sent less than {cooldown} seconds ago, "
                              f"check your inbox and spam folder; try again in {wait} {unit}")
        response.headers["Retry-After"] = str(wait)
        return response
    failure = _send_verification(account_id, account["email"])
    if failure is not None:
        db.release_resend(account_id)
        return failure
    log.info("verification email sent again", extra={"account": account_id})
    return {"email": account["email"], "verified": False}


@bp.get("/users/<who>")
def user_status(who: str):
    """An account's address and whether it is confirmed, by account id (for notification;
    never published by the gateway). An address is accepted too, for messages and jobs of an
    earlier release whose owner was an address."""
    email = try_canonical(who)
    account = db.find_user(email) if email else db.find_account(who)
    if account is None:
        return error(404, "no such user")
    return {"account_id": account["account_id"], "email": account["email"],
            "verified": account["verified"], "created_at": account["created_at"]}


def _send_verification(account_id: str, email: str):
    """Email the verification link now; None when sent, else the error response to give."""
    try:
        verification.send(current_app.config["AUTH"], account_id, email)
    except PermanentError as exc:
        log.info("verification email refused", extra={"account": account_id, "to": email,
                                                      "error": str(exc)})
        return error(422, "the mail server refused this address: check it and try again")
    except (OSError, smtplib.SMTPException) as exc:
        log.warning("verification email not sent", extra={"account": account_id, "to": email,
                                                          "error": str(exc)})
        return error(503, "could not send the verification email right now, try again shortly")
    return None


@bp.post("/validate")
def validate():
    """The claims of the Bearer token, with the account's current address, admin and verified
    flags; 401 when the token is invalid or its account was deleted since it was issued (a new
    account of the same address has another id: the token never passes for it).

    An API key passes only where the caller names the scope the request needs
    (``?scope=upload|read|delete``): 403 without one (account and key management) or when the
    key lacks it, the message naming it; 401 once revoked, expired or its account deleted. Its
    claims are its account's, never admin, with ``key``: ``{"id", "name", "scopes"}``."""
    try:
        token = tokens.bearer(request.headers.get("Authorization"))
        if is_api_key(token):
            return _validate_key(token, request.args.get("scope"))
        claims = tokens.decode(current_app.config["AUTH"].jwt_secret, token)
    except tokens.InvalidToken as exc:
        return _unauthorized(str(exc))
    account = db.find_account(claims["sub"])
    if account is None and "@" in str(claims["sub"]):
        return _unauthorized("this token is from an earlier version of the service: log in "
                             "again")
    if account is None:
        return _unauthorized("this account no longer exists: register again to use the service")
    claims.update(email=account["email"], admin=account["is_admin"],
                  verified=account["verified"])
    return claims, 200


def _validate_key(secret: str, scope: str | None):
    key = apikeys.check(secret)
    if key is None:
        return _unauthorized("this API key is not valid: it was revoked, its account was "
                             "deleted, or it was copied wrong")
    if key["expired"]:
        log.info("api key expired", extra={"account": key["account_id"], "key": key["id"]})
        return _unauthorized(f"this API key expired at {apikeys.iso(key['expires_at'])}: "
                             "make a new one")
    if not scope:
        return error(403, KEY_REFUSED)
    if scope not in SCOPES:
        return error(400, f"unknown scope {scope[:40]!r}: scopes are {', '.join(SCOPES)}")
    if scope not in key["scopes"]:
        return error(403, f"this API key lacks the {scope!r} scope this needs (it has: "
                          f"{', '.join(key['scopes'])})", scope=scope)
    return {"sub": key["account_id"], "email": key["email"], "admin": False,
            "verified": key["verified"],
            "key": {"id": key["id"], "name": key["name"], "scopes": key["scopes"]}}, 200


@bp.post("/tokens")
def create_key():
    """Make an API key for the login token's account from JSON ``{"name", "scopes",
    "expires_in_days"?}``: 201 with its ``secret``, shown this once."""
    try:
        account_id = login_account_id()
    except tokens.InvalidToken as exc:
        return _unauthorized(str(exc))
    settings = current_app.config["AUTH"].api_keys
    try:
        key = apikeys.create(account_id, apikeys.parse(request.get_json(silent=True), settings),
                             settings)
    except apikeys.BadRequest as exc:
        return error(exc.status, str(exc))
    log.info("api key created", extra={"account": account_id, "key": key["id"],
                                       "scopes": key["scopes"]})
    return key, 201, {"Cache-Control": "no-store"}


@bp.get("/tokens")
def list_keys():
    """The login token's account's API keys, newest first, without their secrets."""
    try:
        account_id = login_account_id()
    except tokens.InvalidToken as exc:
        return _unauthorized(str(exc))
    return {"tokens": apikeys.list_keys(account_id)}


@bp.delete("/tokens/<key_id>")
def revoke_key(key_id: str):
    """Revoke one of the login token's account's API keys at once; 404 for any other id."""
    try:
        account_id = login_account_id()
    except tokens.InvalidToken as exc:
        return _unauthorized(str(exc))
    if not apikeys.revoke(account_id, key_id[:64]):
        return error(404, "no such API key")
    log.info("api key revoked", extra={"account": account_id, "key": key_id})
    return "", 204


@bp.delete("/account")
def delete_account():
    """Delete the caller's account: HTTP Basic ``email:password``, or a Bearer token plus
    JSON ``{"password"}``. Its tokens stop working; the gateway removes its files."""
    creds = request.authorization
    if creds is not None and creds.type == "basic":
        email, password = try_canonical(creds.username or ""), creds.password
        account = db.find_user(email) if email else None
    else:
        try:
            account_id = login_account_id()
        except tokens.InvalidToken as exc:
            return _unauthorized(str(exc))
        body = request.get_json(silent=True)
        password = body.get("password") if isinstance(body, dict) else None
        account = db.find_account(account_id)
    if not isinstance(password, str) or not password:
        return error(400, "confirm with your password: HTTP Basic email:password, or a JSON "
                          'body {"password": ...} with your Bearer token')
    if not passwords.verify_password(account["password_hash"] if account else None, password):
        return _unauthorized("wrong password: the account was not deleted")
    db.delete_user(account["account_id"])
    log.info("account deleted", extra={"account": account["account_id"]})
    return {"account_id": account["account_id"], "email": account["email"], "deleted": True}


@bp.get("/deleted-users")
def deleted_users():
    """Accounts deleted lately, for the sweep that removes their jobs and files (internal)."""
    return {"deleted": db.deleted_users()}


@bp.get("/healthz")
def healthz():
    """The process is alive."""
    return {"status": "ok"}


@bp.get("/readyz")
def readyz():
    """MySQL is reachable; why not goes to the log, never to the caller."""
    try:
        db.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        log.warning("not ready", extra={"checks": {"mysql": f"unavailable: {exc}"}})
        return error(503, "not ready")
    return {"status": "ready"}


def _unauthorized(message: str):
    response = error(401, message)
    response.headers["WWW-Authenticate"] = 'Basic realm="mp3converter"'
    return response
