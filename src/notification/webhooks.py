"""Send webhooks: `webhooks` events expanded into one `webhooks.deliver` message per endpoint,
each delivered, signed (Standard Webhooks), and retried on its own.

Two consumer loops beside the emails' (``notification/__main__.py``), so a slow or dead
endpoint never delays an email, nor an email an endpoint:

- ``EventHandler`` (`webhooks`): the job as ``GET /jobs/<id>`` shows it (``common.jobview``),
  with a signed download link when it is done, becomes one body; one delivery message per
  enabled endpoint of the owner that asked for the event, each with its ``webhook-id``
  (``common.webhooks.webhook_id``: the same for the same event and endpoint, however often the
  event is redelivered).
- ``DeliveryHandler`` (`webhooks.deliver`): unless that ``webhook-id`` already succeeded
  (``webhook_sent``), POST it through ``common.egress`` (the URL checked again, the connection
  pinned to the checked address), record the attempt, and on failure publish it again to the
  delay queue `webhooks.deliver.delay.<n>` with the n-th of WEBHOOK_RETRY_DELAYS as its TTL:
  nothing sleeps in a consumer. WEBHOOK_DISABLE_AFTER_FAILURES failed attempts in a row
  disable the endpoint, and its owner is emailed once.
"""

import json
import logging
import time

from common import egress, jobview, messages, metrics, topology
from common import mail as smtp
from common.consumer import Delivery, Handler
from common.jobs import Jobs, Status
from common.store import Store
from common.webhooks import Webhooks, signed_headers, webhook_id
from notification import mail, recipients

log = logging.getLogger(__name__)
ATTEMPT_HEADER = "x-webhook-attempt"  # failed attempts before this one (not the consumer's)


def event_payload(config, event: str, job: dict) -> str:
    """The body every endpoint gets for ``event`` about ``job``."""
    data = jobview.job_json(job)
    if event == "job.done" and job.get("mp3_fid") and job["status"] == Status.DONE:
        url, expires = jobview.download_url(config.public_url, config.download_url_secret,
                                            config.download_url_ttl, str(job["mp3_fid"]),
                                            job["owner"])
        data["download_url"] = url
        data["download_url_expires_at"] = jobview.iso(expires)
    return json.dumps({"type": event, "timestamp": jobview.iso(time.time()), "data": data})


class EventHandler(Handler):
    """Expands a job event into one delivery message per subscribed endpoint."""

    queue = topology.WEBHOOKS

    def __init__(self, config, store: Store):
        self.config = config
        self.jobs = Jobs(store)
        self.webhooks = Webhooks(store)

    def handle(self, delivery: Delivery) -> None:
        msg = messages.decode(messages.WebhookEvent, delivery.body)
        endpoints = self.webhooks.subscribed(msg.owner, msg.type)
        if not endpoints:
            return
        job = self.jobs.get(msg.job_id)
        if job is None:
            log.info("the job was deleted; no webhook", extra={"job_id": msg.job_id})
            return
        payload = event_payload(self.config, msg.type, job)
        for endpoint in endpoints:
            out = messages.WebhookDelivery(
                webhook_id=webhook_id(f"{msg.type}:{msg.job_id}", str(endpoint["_id"])),
                endpoint_id=str(endpoint["_id"]), owner=msg.owner, type=msg.type,
                payload=payload)
            delivery.publisher.publish(topology.WEBHOOK_DELIVERIES, messages.encode(out))
        log.info("webhook event expanded", extra={"job_id": msg.job_id, "event": msg.type,
                                                  "endpoints": len(endpoints)})


class DeliveryHandler(Handler):
    """Delivers one event to one endpoint, at most once successfully."""

    queue = topology.WEBHOOK_DELIVERIES

    def __init__(self, config, store: Store, resolver: egress.Resolver | None = None):
        self.config = config
        self.settings = config.webhooks
        self.webhooks = Webhooks(store)
        self.resolver = resolver

    def handle(self, delivery: Delivery) -> None:
        msg = messages.decode(messages.WebhookDelivery, delivery.body)
        extra = {"webhook_id": msg.webhook_id, "endpoint": msg.endpoint_id, "event": msg.type}
        endpoint = self.webhooks.get(msg.endpoint_id, msg.owner)
        if endpoint is None or endpoint.get("disabled_at"):
            log.info("webhook endpoint deleted or disabled; not sent", extra=extra)
            if endpoint is not None and not endpoint.get("owner_told_at"):
                self._tell_owner(endpoint)  # the email failed when it was disabled: again
            return
        if self.webhooks.was_sent(msg.webhook_id):
            log.info("webhook already delivered; not sent again", extra=extra)
            return
        failed_before = int(delivery.headers.get(ATTEMPT_HEADER, 0) or 0)
        body = msg.payload.encode()
        headers = signed_headers(endpoint["secret"], msg.webhook_id, int(time.time()), body)
        answer = egress.post(endpoint["url"], body, headers,
                             allowed=self.settings.allowed_networks, resolver=self.resolver,
                             connect_timeout=self.settings.connect_timeout,
                             read_timeout=self.settings.read_timeout,
                             max_body=self.settings.response_max_bytes,
                             max_length=self.settings.url_max_length)
        attempt = failed_before + 1
        extra.update(attempt=attempt, status=answer.status, duration=round(answer.duration, 3))
        metrics.WEBHOOK_ATTEMPTS.labels("delivered" if answer.ok else "failed", msg.type).inc()
        metrics.WEBHOOK_DURATION.observe(answer.duration)
        if answer.ok:
            self.webhooks.mark_sent(msg.webhook_id, msg.endpoint_id)
            self.webhooks.record(endpoint, msg.webhook_id, msg.type, attempt, answer,
                                 self.settings.deliveries_kept)
            self.webhooks.succeeded(endpoint)
            log.info("webhook delivered", extra=extra)
            return
        self.webhooks.record(endpoint, msg.webhook_id, msg.type, attempt, answer,
                             self.settings.deliveries_kept)
        extra["error"] = answer.error
        if self.webhooks.failed(endpoint, self.settings.disable_after):
            metrics.WEBHOOK_ENDPOINTS_DISABLED.inc()
            log.warning("webhook endpoint disabled", extra=extra)
            self._tell_owner(endpoint)  # raises if the email cannot go: retried, told then
            return
        delays = self.settings.retry_delays
        if failed_before >= len(delays):
            log.warning("webhook delivery given up", extra=extra)
            return
        delay = delays[failed_before]
        delivery.publisher.publish(topology.retry_queue(self.queue, attempt), delivery.body,
                                   headers={ATTEMPT_HEADER: attempt},
                                   expiration_ms=max(1, int(delay * 1000)))
        log.info("webhook delivery failed; retried later",
                 extra={**extra, "retry_in": delay})

    def _tell_owner(self, endpoint: dict) -> None:
        """Email the owner, once, that the endpoint is disabled (if their address is
        confirmed); what raises (auth or SMTP down) leaves it to the message's retry."""
        to = recipients.confirmed_address(self.config, endpoint["owner"])
        doc = self.webhooks.get(endpoint["_id"]) or endpoint
        if to is not None:
            smtp.send(self.config.smtp, mail.compose_disabled(
                self.config, to, endpoint["url"], doc.get("disabled_reason") or "it kept failing"))
        if not self.webhooks.told(doc):
            log.info("owner already told about the disabled webhook endpoint")


def make_handlers(config, store: Store) -> list[Handler]:
    """The webhook loops of notification."""
    return [EventHandler(config, store), DeliveryHandler(config, store)]
