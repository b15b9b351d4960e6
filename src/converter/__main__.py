"""Entry point: ``python -m converter``."""

import sys

from common.consumer import serve
from converter.config import ConverterConfig
from converter.worker import ConvertHandler

if __name__ == "__main__":
    sys.exit(serve("converter", ConverterConfig.from_env, ConvertHandler))
