"""Ask auth, at send time, where a job's owner gets email: the account's address, if its owner
confirmed it."""

import json
import urllib.error
import urllib.parse
import urllib.request

from common.errors import RetryableError


def confirmed_address(config, owner: str) -> str | None:
    """The address of the account ``owner`` (an account id; an address for a message of an
    earlier release) when its owner confirmed it, else None; RetryableError if auth is down.

    An unknown account counts as unconfirmed: nobody asked for email there.
    """
    url = f"{config.auth_url}/users/{urllib.parse.quote(owner, safe='@')}"
    try:
        with urllib.request.urlopen(url, timeout=config.auth_timeout) as response:
            body = json.load(response)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise RetryableError(f"auth answered {exc.code} about the recipient") from None
    except (OSError, ValueError) as exc:
        raise RetryableError(f"auth unavailable: {exc}") from None
    email = body.get("email") if isinstance(body, dict) else None
    return email if body.get("verified") is True and isinstance(email, str) else None
