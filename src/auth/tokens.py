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


def issue(secret: str, email: str, admin: bool, ttl_seconds: int, verified: bool) -> str:
    """A signed login token for ``email``."""
    now = int(time.time())
    claims = {"sub": email, "iat": now, "exp": now + ttl_seconds, "admin": bool(admin),
              "verified": bool(verified)}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def decode(secret: str, token: str) -> dict:
    """The claims of a valid login token; raises InvalidToken otherwise."""
    return _decode(secret, token, audience=None)


def issue_verify(secret: str, email: str, ttl_seconds: int) -> str:
    """A signed token that confirms ``email`` when its owner follows the emailed link."""
    now = int(time.time())
    claims = {"sub": email, "iat": now, "exp": now + ttl_seconds, "aud": VERIFY_AUDIENCE}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def decode_verify(secret: str, token: str) -> str:
    """The email a valid verification token confirms; raises InvalidToken otherwise."""
    return _decode(secret, token, audience=VERIFY_AUDIENCE)["sub"]


def _decode(secret: str, token: str, audience: str | None) -> dict:
    required = ["sub", "iat", "exp"] + (["aud"] if audience else [])
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
