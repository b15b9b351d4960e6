"""Checks on the email and password a new user chooses."""

from email_validator import EmailNotValidError, validate_email

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024


class ValidationFailed(ValueError):
    """The email or password is not acceptable."""


def check_credentials(email, password) -> str:
    """Return the normalised email, or raise ValidationFailed with a reason."""
    if not isinstance(email, str) or not isinstance(password, str):
        raise ValidationFailed("email and password must be strings")
    try:
        email = validate_email(email, check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise ValidationFailed(f"invalid email: {exc}") from None
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed(f"password must be at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ValidationFailed(f"password must be at most {MAX_PASSWORD_LENGTH} characters")
    return email
