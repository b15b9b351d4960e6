"""Checks on the email and password a new user chooses."""

from common.addresses import InvalidAddress, canonical

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024


class ValidationFailed(ValueError):
    """The email or password is not acceptable."""


def check_credentials(email, password) -> str:
    """Return the canonical email (``common.addresses``), or raise ValidationFailed with a
    reason."""
    if not isinstance(email, str) or not isinstance(password, str):
        raise ValidationFailed("email and password must be strings")
    try:
        email = canonical(email)
    except InvalidAddress as exc:
        raise ValidationFailed(str(exc)) from None
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed(f"password must be at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ValidationFailed(f"password must be at most {MAX_PASSWORD_LENGTH} characters")
    return email
