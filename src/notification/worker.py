"""Handle one `mp3` message: email the owner once."""

import logging

from common import messages, topology
from common.consumer import Delivery, Handler
from common.log import bound_job
from common.store import Store, now
from notification import mail

log = logging.getLogger(__name__)


class NotifyHandler(Handler):
    """Emails users when their conversion finished or failed."""

    queue = topology.MP3

    def __init__(self, config, store: Store):
        self.config = config
        self.store = store

    def handle(self, delivery: Delivery) -> None:
        """Send the email unless this job's email already went out."""
        msg = messages.decode(messages.Mp3Message, delivery.body)
        with bound_job(msg.job_id):
            job = self.store.get_job(msg.job_id) or {}
            if job.get("notified_at"):
                log.info("email already sent; skipping")
                return
            email = mail.compose(self.config, msg.username, msg.job_id,
                                 job.get("filename") or "your video", msg.mp3_fid, msg.error)
            mail.send(self.config, email)
            if job:
                self.store.update_job(msg.job_id, {"notified_at": now()})
            log.info("email sent", extra={"to": msg.username, "failed": msg.error is not None})
