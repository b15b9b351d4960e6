"""API keys: named secrets with scopes that let scripts call the gateway without the account's
password (``Authorization: Bearer mp3k_...``).

A key's secret is ``mp3k_`` followed by 32 random bytes, URL-safe base64 (43 characters). It is
shown once, when the key is made, and stored only as its SHA-256. A password needs a slow,
salted hash (argon2id) because people choose guessable ones: an attacker holding the table tries
likely passwords against each hash. A key's secret is 256 random bits that nobody chose: there
is no dictionary to try, and brute force over 2**256 is out of reach whatever the hash costs, so
a fast hash loses nothing. It gains a lookup by an indexed column (the hash is unique, so no
salt is wanted) and keeps every request from spending argon2's 64 MiB and tens of milliseconds.
Looking a key up by its hash leaks nothing useful through timing either: how long the index
search takes depends on the hash, which says nothing about any other secret.

Checking a key (``check``) reads the key with its account in one query: a revoked key, or one
of a deleted account, is unknown at once (nothing is cached), an expired one is refused. Its
``last_used_at`` is written at most once a minute per key (``LAST_USED_RESOLUTION_SECONDS``), so
a script's busy minute costs one write, not one per request.
"""

import datetime as dt
import hashlib
import secrets
import unicodedata
from dataclasses import dataclass

from auth import db
from common.apikeys import PREFIX, SCOPES

SECRET_BYTES = 32
LAST_USED_RESOLUTION_SECONDS = 60
FIELDS = ("name", "scopes", "expires_in_days")
COLUMNS = ("id, name, scopes, created_at, last_used_at, expires_at")


@dataclass(frozen=True)
class KeySettings:
    """Limits on an account's keys (API_KEYS_PER_ACCOUNT, API_KEY_NAME_MAX_LENGTH,
    API_KEY_MAX_DAYS)."""

    per_account: int = 20
    name_max_length: int = 100
    max_days: int = 365


class BadRequest(ValueError):
    """The key asked for is not acceptable: ``status`` and a sentence saying why."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class NewKey:
    """What the caller asked for, checked."""

    name: str
    scopes: tuple[str, ...]
    expires_in_days: int | None


def digest(secret: str) -> bytes:
    """The SHA-256 of a secret, the only form it is stored in."""
    return hashlib.sha256(secret.encode("utf-8")).digest()


def new_secret() -> str:
    """A fresh secret: the prefix and 32 random bytes, URL-safe base64 without padding."""
    return PREFIX + secrets.token_urlsafe(SECRET_BYTES)


def parse(body, settings: KeySettings) -> NewKey:
    """Check a JSON body ``{"name", "scopes", "expires_in_days"?}``; raises BadRequest."""
    if not isinstance(body, dict):
        raise BadRequest(400, 'expected a JSON object {"name": ..., "scopes": [...], '
                              '"expires_in_days": ...}')
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise BadRequest(422, f"unknown field {unknown[0]!r}: a key has "
                              f"{', '.join(FIELDS)}")
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise BadRequest(422, "name is required: a few words saying what the key is for")
    name = unicodedata.normalize("NFC", name.strip())
    if len(name) > settings.name_max_length:
        raise BadRequest(422, f"name must be at most {settings.name_max_length} characters")
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Co", "Cn") for ch in name):
        raise BadRequest(422, "name must not contain control or invisible characters")
    scopes = body.get("scopes")
    if not isinstance(scopes, list) or not scopes or not all(isinstance(s, str) for s in scopes):
        raise BadRequest(422, f"scopes must be a list of one or more of {', '.join(SCOPES)}")
    for scope in scopes:
        if scope not in SCOPES:
            raise BadRequest(422, f"unknown scope {scope[:40]!r}: scopes are "
                                  f"{', '.join(SCOPES)}")
    days = body.get("expires_in_days")
    if days is not None and (isinstance(days, bool) or not isinstance(days, int)
                             or not 1 <= days <= settings.max_days):
        raise BadRequest(422, f"expires_in_days must be a whole number from 1 to "
                              f"{settings.max_days}, or null for a key that does not expire")
    return NewKey(name, tuple(s for s in SCOPES if s in scopes), days)


def iso(epoch) -> str | None:
    """Epoch seconds as the API writes times (``2026-12-04T15:30:00Z``), None as null."""
    if epoch is None:
        return None
    return dt.datetime.fromtimestamp(int(epoch), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _public(row: dict) -> dict:
    """A key as its owner sees it: never its secret or hash."""
    return {"id": row["id"], "name": row["name"], "scopes": row["scopes"].split(","),
            "created_at": iso(row["created_at"]), "last_used_at": iso(row["last_used_at"]),
            "expires_at": iso(row["expires_at"])}


def create(account_id: str, key: NewKey, settings: KeySettings) -> dict:
    """Record a new key of the account; returns it with its ``secret`` (the only time it is
    given). Raises BadRequest (404 the account is gone, 409 too many keys or the name taken).
    The account's row is locked meanwhile, so keys made at once are counted one by one."""
    secret = new_secret()
    key_id = secrets.token_hex(8)
    with db.get_db().cursor(db.MySQLdb.cursors.DictCursor) as cur:
        cur.execute("START TRANSACTION")
        try:
            cur.execute("SELECT 1 FROM users WHERE account_id = %s FOR UPDATE", (account_id,))
            if cur.fetchone() is None:
                raise BadRequest(404, "this account no longer exists")
            cur.execute("SELECT name FROM api_keys WHERE account_id = %s", (account_id,))
            names = [row["name"] for row in cur.fetchall()]
            if len(names) >= settings.per_account:
                raise BadRequest(409, f"this account has {len(names)} API keys, the most it may "
                                      "have: revoke one it no longer needs first")
            if key.name in names:
                raise BadRequest(409, f"this account already has a key named {key.name!r}: "
                                      "choose another name")
            cur.execute(
                "INSERT INTO api_keys (id, account_id, name, scopes, secret_sha256, created_at,"
                " expires_at) VALUES (%s, %s, %s, %s, %s, UNIX_TIMESTAMP(),"
                " IF(%s IS NULL, NULL, UNIX_TIMESTAMP() + %s * 86400))",
                (key_id, account_id, key.name, ",".join(key.scopes), digest(secret),
                 key.expires_in_days, key.expires_in_days))
            cur.execute(f"SELECT {COLUMNS} FROM api_keys WHERE id = %s", (key_id,))
            row = cur.fetchone()
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise
    return {**_public(row), "secret": secret}


def list_keys(account_id: str) -> list[dict]:
    """The account's keys, newest first (without secrets)."""
    with db.get_db().cursor(db.MySQLdb.cursors.DictCursor) as cur:
        cur.execute(f"SELECT {COLUMNS} FROM api_keys WHERE account_id = %s"
                    " ORDER BY created_at DESC, id", (account_id,))
        return [_public(row) for row in cur.fetchall()]


def revoke(account_id: str, key_id: str) -> bool:
    """Delete one of the account's keys; False when it has none with this id."""
    with db.get_db().cursor() as cur:
        cur.execute("DELETE FROM api_keys WHERE id = %s AND account_id = %s",
                    (key_id, account_id))
        return cur.rowcount == 1


def check(secret: str) -> dict | None:
    """The key a secret opens, with its account (``id, name, scopes, expires_at, expired,
    account_id, email, verified``), or None when no key has it (never made, revoked, or its
    account deleted). Records its use, at most once a minute."""
    with db.get_db().cursor(db.MySQLdb.cursors.DictCursor) as cur:
        cur.execute(
            "SELECT k.id, k.name, k.scopes, k.expires_at, k.last_used_at,"
            " (k.expires_at IS NOT NULL AND k.expires_at <= UNIX_TIMESTAMP()) AS expired,"
            " u.account_id, u.email, u.verified FROM api_keys k"
            " JOIN users u ON u.account_id = k.account_id WHERE k.secret_sha256 = %s",
            (digest(secret),))
        row = cur.fetchone()
        if row is None:
            return None
        if not row["expired"]:
            cur.execute("UPDATE api_keys SET last_used_at = UNIX_TIMESTAMP() WHERE id = %s AND"
                        " (last_used_at IS NULL OR last_used_at <= UNIX_TIMESTAMP() - %s)",
                        (row["id"], LAST_USED_RESOLUTION_SECONDS))
    return {**row, "scopes": row["scopes"].split(","), "expired": bool(row["expired"]),
            "verified": bool(row["verified"])}
