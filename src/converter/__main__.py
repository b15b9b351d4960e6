"""Entry point: ``python -m converter``."""

import sys

from common import log as jsonlog
from common.consumer import Consumer
from common.settings import load_or_exit
from common.store import Store
from converter.config import ConverterConfig
from converter.worker import ConvertHandler


def main() -> int:
    """Run the converter until SIGTERM."""
    config = load_or_exit(ConverterConfig.from_env, "converter")
    jsonlog.configure("converter", config.log_level)
    handler = ConvertHandler(config, Store(config.mongo))
    return Consumer(handler, config.messaging, config.consumer).run()


if __name__ == "__main__":
    sys.exit(main())
