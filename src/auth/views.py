"""HTTP endpoints of auth: login, register, validate, health."""

import logging

from flask import Blueprint, current_app, request

from auth import db, passwords, tokens
from auth.validation import ValidationFailed, check_credentials
from common.web import error

bp = Blueprint("auth", __name__)
log = logging.getLogger(__name__)


@bp.errorhandler(db.MySQLdb.OperationalError)
@bp.errorhandler(db.MySQLdb.InterfaceError)
def _database_down(exc):
    log.warning("database unavailable", extra={"error": str(exc)})
    return error(503, "user database unavailable, try again shortly")


@bp.post("/login")
def login():
    """HTTP Basic credentials in, a raw JWT (text/plain) out."""
    creds = request.authorization
    if creds is None or creds.type != "basic" or not creds.username or creds.password is None:
        return _unauthorized("missing HTTP Basic credentials")
    row = db.find_user(creds.username.strip().lower())
    if not passwords.verify_password(row[1] if row else None, creds.password):
        return _unauthorized("invalid email or password")
    config = current_app.config["AUTH"]
    token = tokens.issue(config.jwt_secret, row[0], bool(row[2]), config.jwt_ttl_seconds)
    log.info("login", extra={"user": row[0]})
    return token, 200, {"Content-Type": "text/plain; charset=utf-8"}


@bp.post("/register")
def register():
    """Create an account from JSON ``{"email", "password"}``."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return error(400, 'expected a JSON object {"email": ..., "password": ...}')
    try:
        email = check_credentials(body.get("email"), body.get("password"))
        db.insert_user(email, body["password"])
    except ValidationFailed as exc:
        return error(422, str(exc))
    except db.EmailTaken:
        return error(409, "an account with this email already exists")
    log.info("registered", extra={"user": email})
    return {"email": email}, 201


@bp.post("/validate")
def validate():
    """The claims of the Bearer token, or 401."""
    try:
        token = tokens.bearer(request.headers.get("Authorization"))
        claims = tokens.decode(current_app.config["AUTH"].jwt_secret, token)
    except tokens.InvalidToken as exc:
        return _unauthorized(str(exc))
    return claims, 200


@bp.get("/healthz")
def healthz():
    """The process is alive."""
    return {"status": "ok"}


@bp.get("/readyz")
def readyz():
    """MySQL is reachable."""
    db.ping()
    return {"status": "ready"}


def _unauthorized(message: str):
    response = error(401, message)
    response.headers["WWW-Authenticate"] = 'Basic realm="mp3converter"'
    return response
