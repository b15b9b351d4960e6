"""Entry point: ``python -m notification``."""

import sys

from common import log as jsonlog
from common.consumer import Consumer
from common.settings import load_or_exit
from common.store import Store
from notification.config import NotificationConfig
from notification.worker import NotifyHandler


def main() -> int:
    """Run the notification consumer until SIGTERM."""
    config = load_or_exit(NotificationConfig.from_env, "notification")
    jsonlog.configure("notification", config.log_level)
    handler = NotifyHandler(config, Store(config.mongo))
    return Consumer(handler, config.messaging, config.consumer).run()


if __name__ == "__main__":
    sys.exit(main())
