"""The web page at ``/`` (files in the app's static folder) and ``/openapi.json``."""

import json
import mimetypes
from functools import cache
from pathlib import Path

from flask import Blueprint, current_app

bp = Blueprint("ui", __name__)
OPENAPI_PATH = Path(__file__).with_name("openapi.json")
PAGE_POLICY = ("default-src 'self'; img-src 'self' data: blob:; media-src 'self'; "
               "frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'")
# The page's scripts are ES modules, which a browser runs only when served with a JavaScript
# type: text/javascript (RFC 9239) wherever the gateway runs, whatever /etc/mime.types holds.
mimetypes.add_type("text/javascript", ".js")


@cache
def openapi_document() -> dict:
    """The gateway's OpenAPI 3 document, read once."""
    return json.loads(OPENAPI_PATH.read_text(encoding="utf-8"))


@bp.get("/")
def index():
    """The single-page web app."""
    response = current_app.send_static_file("index.html")
    response.headers["Content-Security-Policy"] = PAGE_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.get("/openapi.json")
def openapi():
    """The OpenAPI 3 description of every route."""
    return current_app.response_class(json.dumps(openapi_document(), indent=1),
                                      mimetype="application/json")
