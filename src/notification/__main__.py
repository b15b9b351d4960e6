"""Entry point: ``python -m notification``."""

import sys

from common.consumer import serve
from notification import webhooks
from notification.config import NotificationConfig
from notification.worker import NotifyHandler


def make_handlers(config: NotificationConfig, store) -> list:
    """Three consumer loops: the emails (`mp3`), and apart from them the webhooks' events
    (`webhooks`) and deliveries (`webhooks.deliver`), so neither ever waits for the other."""
    return [NotifyHandler(config, store), *webhooks.make_handlers(config, store)]


if __name__ == "__main__":
    sys.exit(serve("notification", NotificationConfig.from_env, make_handlers))
