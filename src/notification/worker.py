"""Handle one `mp3` message: email the owner once, if they confirmed their address."""

import logging

from common import mail as smtp
from common import messages, topology
from common.consumer import Delivery, Handler
from common.jobs import Jobs
from common.log import bound_job
from common.store import Store
from notification import mail, recipients

log = logging.getLogger(__name__)
SKIPPED_UNVERIFIED = "skipped: address not verified"


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
                return
            if job.get("notified_at"):
                log.info("email already sent; skipping")
                return
            if not recipients.is_verified(self.config, msg.owner):
                self.jobs.mark_notified(msg.job_id, SKIPPED_UNVERIFIED)
                log.info("email not sent: address not verified", extra={"to": msg.owner})
                return
            email = mail.compose(self.config, msg.owner, msg.job_id,
                                 job.get("filename") or "your video", msg.mp3_fid, msg.error,
                                 job.get("expires_at"))
            smtp.send(self.config.smtp, email)
            self.jobs.mark_notified(msg.job_id, "sent")
            log.info("email sent", extra={"to": msg.owner, "failed": msg.error is not None})
