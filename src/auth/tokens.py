"""Issue and check the JWTs that prove who a user is, and those that confirm an address."""

import time

import jwt

ALGORITHM = "HS256"
# Audience of email verification tokens. Login tokens carry no audience, and PyJWT refuses a
# token with an audience when none is expected, so neither kind passes for the other.
VERIFY_AUDIENCE = "verify"


class InvalidToken(Exception):
    """The token is missing, malformed, forged or expired."""


class ExpiredToken(InvalidToken):
    """The token was genuine but its lifetime is over."""


def issue(secret: str, account: dict, ttl_seconds: int) -> str:
    """A signed login token for ``account`` (``auth.db``): its subject is the account's id,
    never its address; ``email`` is for display."""
    now = int(time.time())
    claims = {"sub": account["account_id"], "email": account["email"], "iat": now,
              "exp": now + ttl_seconds, "admin": bool(account["is_admin"]),
              "verified": bool(account["verified"])}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def decode(secret: str, token: str) -> dict:
    """The claims of a valid login token; raises InvalidToken otherwise."""
    return _decode(secret, token, audience=None)


def issue_verify(secret: str, account_id: str, email: str, ttl_seconds: int) -> str:
    """A signed token that confirms ``email`` for the account ``account_id`` when its owner
    follows the emailed link: void once the account is gone or has another address."""
    now = int(time.time())
    claims = {"sub": account_id, "email": email, "iat": now, "exp": now + ttl_seconds,
              "aud": VERIFY_AUDIENCE}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def decode_verify(secret: str, token: str) -> tuple[str, str]:
    """(account id, address) a valid verification token confirms; raises InvalidToken
    otherwise."""
    claims = _decode(secret, token, audience=VERIFY_AUDIENCE, extra=("email",))
    if not isinstance(claims["sub"], str) or not isinstance(claims["email"], str):
        raise InvalidToken("invalid token: malformed claims")
    return claims["sub"], claims["email"]


def _decode(secret: str, token: str, audience: str | None, extra: tuple = ()) -> dict:
    required = ["sub", "iat", "exp", *extra] + (["aud"] if audience else [])
    try:
        return jwt.decode(token, secret, algorithms=[ALGORITHM], audience=audience,
                          options={"require": required})
    except jwt.ExpiredSignatureError:
        raise ExpiredToken("token expired") from None
    except jwt.InvalidTokenError as exc:
        raise InvalidToken(f"invalid token: {exc}") from None


def bearer(header: str | None) -> str:
    """The token in an ``Authorization: Bearer <token>`` header; raises InvalidToken."""
    if not header:
        raise InvalidToken("missing Authorization header")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidToken("Authorization header must be 'Bearer <token>'")
    return token.strip()
