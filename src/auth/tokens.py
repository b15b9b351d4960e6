"""Issue and check the JWTs that prove who a user is."""

import time

import jwt

ALGORITHM = "HS256"


class InvalidToken(Exception):
    """The token is missing, malformed, forged or expired."""


def issue(secret: str, email: str, admin: bool, ttl_seconds: int) -> str:
    """A signed token for ``email``."""
    now = int(time.time())
    claims = {"sub": email, "iat": now, "exp": now + ttl_seconds, "admin": bool(admin)}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def decode(secret: str, token: str) -> dict:
    """The claims of a valid token; raises InvalidToken otherwise."""
    try:
        return jwt.decode(token, secret, algorithms=[ALGORITHM],
                          options={"require": ["sub", "iat", "exp"]})
    except jwt.ExpiredSignatureError:
        raise InvalidToken("token expired") from None
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
