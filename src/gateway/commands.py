"""Operator click commands of the gateway (registered on ``flask --app gateway``)."""


def init_app(app) -> None:
    """Register the commands."""
