"""Ask auth, at send time, where a job's owner gets email: the account's address, if its owner
confirmed it."""

import urllib.parse

import requests

from common.errors import RetryableError


def confirmed_address(config, owner: str) -> str | None:
    """The address of the account ``owner`` (an account id; an address for a message of an
    earlier release) when its owner confirmed it, else None; RetryableError if auth is down.

    An unknown account counts as unconfirmed: nobody asked for email there.
    """
    url = f"{config.auth_url}/users/{urllib.parse.quote(owner, safe='@')}"
    try:
        response = requests.get(url, timeout=config.auth_timeout, allow_redirects=False)
    except requests.RequestException as exc:
        raise RetryableError(f"auth unavailable: {exc}") from None
    if response.status_code == 404:
        return None
    if response.status_code != 200:
        raise RetryableError(f"auth answered {response.status_code} about the recipient")
    try:
        body = response.json()
    except ValueError as exc:
        raise RetryableError(f"auth unavailable: {exc}") from None
    email = body.get("email") if isinstance(body, dict) else None
    return email if body.get("verified") is True and isinstance(email, str) else None
