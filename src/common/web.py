"""Flask helpers shared by the HTTP services: JSON errors and request logging context."""

import logging

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


def error(status: int, message: str, **extra):
    """A JSON error response: ``{"error": message}`` with ``status``."""
    response = jsonify({"error": message, **extra})
    response.status_code = status
    return response


def register_json_errors(app: Flask) -> None:
    """Answer every HTTP error, and any unhandled exception, with a JSON body."""

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        response = error(exc.code or 500, exc.description or exc.name)
        for key, value in exc.get_headers():
            if key.lower() not in ("content-type", "content-length"):
                response.headers[key] = value
        return response

    @app.errorhandler(Exception)
    def _unhandled(exc: Exception):
        log.exception("unhandled error")
        return error(500, "internal error")
