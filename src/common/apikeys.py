"""What every service knows of an API key: how it looks (the secret's prefix) and its scopes.
Issuing, hashing and checking keys is auth's (``auth.apikeys``)."""

# Every key's secret starts with this, so that it is recognisable in a script or a leak report
# and is told apart from a login token (a JWT) without asking auth.
PREFIX = "mp3k_"
# What a key may be allowed to do: upload (POST /upload), read (the jobs, their covers and
# MP3s), delete (DELETE /jobs/<id>). Account and key management are never open to a key.
SCOPES = ("upload", "read", "delete")
# The 403 of an API key sent to the account or its keys.
KEY_REFUSED = ("an API key cannot be used for the account or its keys: log in with your "
               "password for this")


def is_api_key(token: str | None) -> bool:
    """Whether a Bearer token is an API key's secret (it may still be unknown or revoked)."""
    return isinstance(token, str) and token.startswith(PREFIX)


def bearer_is_api_key(header: str | None) -> bool:
    """Whether an ``Authorization`` header carries an API key as its Bearer token."""
    scheme, _, token = (header or "").partition(" ")
    return scheme.lower() == "bearer" and is_api_key(token.strip())
