"""Flask helpers shared by the HTTP services: JSON errors and request logging context."""

import logging

from flask import Flask, jsonify
from flask.json.provider import DefaultJSONProvider
from gunicorn.http.errors import NoMoreData, ParseException
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


class JSONProvider(DefaultJSONProvider):
    """Flask's JSON, where a document nested too deeply for Python's decoder (``[`` repeated
    a few thousand times) is malformed JSON like any other: ValueError, so ``get_json`` answers
    400 (or None with ``silent=True``) instead of letting a RecursionError become a 500."""

    def loads(self, s, **kwargs):
        try:
            return super().loads(s, **kwargs)
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None


def error(status: int, message: str, **extra):
    """A JSON error response: ``{"error": message}`` with ``status``."""
    response = jsonify({"error": message, **extra})
    response.status_code = status
    return response


def register_json_errors(app: Flask) -> None:
    """Answer every HTTP error, and any unhandled exception, with a JSON body; a request body
    that cannot be parsed (JSON nested too deeply, broken chunked framing) is 400."""
    app.json = JSONProvider(app)

    @app.errorhandler(ParseException)
    def _malformed_framing(exc: ParseException):
        # raised by gunicorn's chunked reader while a view reads the body (an invalid chunk
        # size, extension or trailer); gunicorn then closes the connection
        log.info("malformed request body", extra={"error": str(exc)[:200]})
        return error(400, "malformed request body: its chunked transfer encoding is invalid")

    @app.errorhandler(NoMoreData)
    def _truncated_body(exc: NoMoreData):
        log.info("request body cut short")
        return error(400, "the request body ended before it was complete")

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
