"""Handle one `mp3` message: email the owner once, if they confirmed their address."""

import logging
import time

from common import mail as smtp
from common import messages, metrics, topology
from common.consumer import Delivery, Handler
from common.errors import PermanentError
from common.jobs import Jobs
from common.log import bound_job
from common.store import Store
from notification import mail, recipients

log = logging.getLogger(__name__)
SKIPPED_UNVERIFIED = "skipped: address not verified"


def kind(msg: messages.Mp3Message) -> str:
    """Which email the message asks for: ``ready`` (an MP3) or ``failed``."""
    return "failed" if msg.error is not None or not msg.mp3_fid else "ready"


class NotifyHandler(Handler):
    """Emails users when their conversion finished or failed."""

    queue = topology.MP3

    def __init__(self, config, store: Store):
        self.config = config
        self.jobs = Jobs(store)

    def handle(self, delivery: Delivery) -> None:
        """Send the email unless it already went out or the address is not confirmed."""
        msg = messages.decode(messages.Mp3Message, delivery.body)
        with bound_job(msg.job_id):
            job = self.jobs.get(msg.job_id)
            if job is None:
                log.info("the job was deleted; no email")
                metrics.EMAILS.labels(kind(msg), "skipped").inc()
                return
            if job.get("notified_at"):
                log.info("email already sent; skipping")
                return
            to = recipients.confirmed_address(self.config, msg.owner)
            if to is None:
                self.jobs.mark_notified(msg.job_id, SKIPPED_UNVERIFIED)
                log.info("email not sent: address not verified", extra={"account": msg.owner})
                metrics.EMAILS.labels(kind(msg), "skipped").inc()
                return
            email = mail.compose(self.config, to, msg.job_id,
                                 job.get("filename") or "your video", msg.mp3_fid, msg.error,
                                 job.get("expires_at"))
            started = time.monotonic()
            try:
                smtp.send(self.config.smtp, email)
            finally:
                metrics.SMTP_DURATION.observe(time.monotonic() - started)
            metrics.EMAILS.labels(kind(msg), "sent").inc()
            self.jobs.mark_notified(msg.job_id, "sent")
            log.info("email sent", extra={"account": msg.owner, "to": to,
                                          "failed": msg.error is not None})

    def on_outcome(self, delivery: Delivery, outcome: str) -> None:
        """Count an email retried later or given up on (an unreadable message is not one)."""
        try:
            msg = messages.decode(messages.Mp3Message, delivery.body)
        except PermanentError:
            return
        metrics.EMAILS.labels(kind(msg), outcome).inc()
