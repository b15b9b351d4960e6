"""Ask auth, at send time, whether an address has been confirmed by its owner."""

import json
import urllib.error
import urllib.parse
import urllib.request

from common.errors import RetryableError


def is_verified(config, email: str) -> bool:
    """True when auth knows ``email`` and its owner confirmed it; RetryableError if auth is down.

    An unknown address counts as unconfirmed: nobody asked for email there.
    """
    url = f"{config.auth_url}/users/{urllib.parse.quote(email, safe='@')}"
    try:
        with urllib.request.urlopen(url, timeout=config.auth_timeout) as response:
            body = json.load(response)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return False
        raise RetryableError(f"auth answered {exc.code} about the recipient") from None
    except (OSError, ValueError) as exc:
        raise RetryableError(f"auth unavailable: {exc}") from None
    return body.get("verified") is True
