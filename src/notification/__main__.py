"""Entry point: ``python -m notification``."""

import sys

from common.consumer import serve
from notification.config import NotificationConfig
from notification.worker import NotifyHandler

if __name__ == "__main__":
    sys.exit(serve("notification", NotificationConfig.from_env, NotifyHandler))
