"""POST, GET /webhooks, DELETE /webhooks/<id>, POST /webhooks/<id>/test and GET
/webhooks/<id>/deliveries: the caller's webhook endpoints (``common.webhooks``), sent by
notification.

Only a login token manages them, as it manages API keys (``login_required`` names no scope: an
API key gets 403). An endpoint's URL is checked against the egress rules (``common.egress``) at
registration; notification checks it again before every delivery. Its signing secret is in the
answer to POST only."""

import json
import time
import uuid

from flask import Blueprint, g, jsonify, request

from common import egress, messages, topology
from common.jobview import iso
from common.web import error
from common.webhooks import EVENTS, TEST_EVENT, Webhooks
from common.webhooks import webhook_id as delivery_id
from gateway import backends, ratelimit
from gateway.security import login_required

bp = Blueprint("webhooks", __name__)
MAX_BODY = 64 * 1024
FIELDS = {"url", "events"}
SHOWN_DELIVERIES = 50


def _webhooks() -> Webhooks:
    return Webhooks(backends.store())


def endpoint_json(doc: dict, secret: bool = False) -> dict:
    """The public view of an endpoint (its secret only when just made)."""
    shown = {"id": str(doc["_id"]), "url": doc["url"], "events": list(doc["events"]),
             "created_at": iso(doc["created_at"]), "enabled": not doc.get("disabled_at"),
             "disabled_at": iso(doc.get("disabled_at")),
             "disabled_reason": doc.get("disabled_reason"),
             "consecutive_failures": doc.get("failures", 0)}
    if secret:
        shown["secret"] = doc["secret"]
    return shown


@bp.post("/webhooks")
@login_required
@ratelimit.webhook_per_user
def create():
    """A new endpoint from JSON ``{"url", "events"?}``; 201 with its secret, shown this once."""
    if request.content_length is None or request.content_length > MAX_BODY:
        return error(413 if request.content_length else 411,
                     f"send a JSON body of at most {MAX_BODY} bytes with Content-Length")
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return error(400, "send a JSON object: {\"url\": ..., \"events\": [...]}")
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        return error(422, f"unknown field {unknown[0]}: send url and events")
    settings = backends.config().webhooks
    url = body.get("url")
    if not isinstance(url, str):
        return error(422, "url is missing: give the http(s) URL that receives the events")
    events = body.get("events", list(EVENTS))
    if (not isinstance(events, list) or not events
            or any(not isinstance(e, str) or e not in EVENTS for e in events)):
        return error(422, f"events must be a non-empty list of {', '.join(EVENTS)}")
    try:
        egress.check_url(url, settings.allowed_networks, max_length=settings.url_max_length)
    except egress.Refused as exc:
        return error(422, f"url refused: {exc}")
    doc = _webhooks().create(g.user, url, list(dict.fromkeys(events)), settings.per_account)
    if doc is None:
        return error(409, f"this account has {settings.per_account} webhooks, the most it may "
                          "have: delete one first")
    response = _json(endpoint_json(doc, secret=True), 201)
    response.headers["Cache-Control"] = "no-store"
    return response


def _json(payload: dict, status: int):
    response = jsonify(payload)
    response.status_code = status
    return response


@bp.get("/webhooks")
@login_required
def list_endpoints():
    """The caller's endpoints, oldest first, without their secrets."""
    return {"webhooks": [endpoint_json(doc) for doc in _webhooks().of_owner(g.user)]}


@bp.delete("/webhooks/<webhook_id>")
@login_required
def delete(webhook_id: str):
    """Delete one of the caller's endpoints and its deliveries; nothing more is sent to it."""
    if not _webhooks().delete(webhook_id, g.user):
        return error(404, "no such webhook")
    return "", 204


@bp.post("/webhooks/<webhook_id>/test")
@login_required
@ratelimit.webhook_per_user
def send_test(webhook_id: str):
    """Send a `webhook.test` event to the endpoint (through notification, as every event)."""
    doc = _webhooks().get(webhook_id, g.user)
    if doc is None:
        return error(404, "no such webhook")
    if doc.get("disabled_at"):
        return error(409, f"this webhook is disabled ({doc.get('disabled_reason')}): delete it "
                          "and register it again")
    key = f"{TEST_EVENT}:{uuid.uuid4().hex}"
    msg_id = delivery_id(key, str(doc["_id"]))
    payload = json.dumps({"type": TEST_EVENT, "timestamp": iso(time.time()),
                          "data": {"webhook": str(doc["_id"]),
                                   "message": "a test event sent on your request"}})
    delivery = messages.WebhookDelivery(webhook_id=msg_id, endpoint_id=str(doc["_id"]),
                                        owner=g.user, type=TEST_EVENT, payload=payload)
    backends.publisher().publish(topology.WEBHOOK_DELIVERIES, messages.encode(delivery))
    return _json({"webhook_id": msg_id}, 202)


@bp.get("/webhooks/<webhook_id>/deliveries")
@login_required
def deliveries(webhook_id: str):
    """The endpoint's latest delivery attempts, newest first."""
    webhooks = _webhooks()
    doc = webhooks.get(webhook_id, g.user)
    if doc is None:
        return error(404, "no such webhook")
    return {"deliveries": [
        {"webhook_id": d["webhook_id"], "type": d["type"], "attempt": d.get("attempt"),
         "at": iso(d["at"]), "status": d.get("status"), "duration": d.get("duration"),
         "error": d.get("error"), "ok": d.get("ok", False)}
        for d in webhooks.recent(doc["_id"], SHOWN_DELIVERIES)]}
