"""Entry point: ``python -m converter``."""

import sys

from common import indexes, metrics, topology
from common.consumer import serve
from common.jobs import Jobs
from converter.config import ConverterConfig
from converter.worker import ConvertHandler


def make_handlers(config: ConverterConfig, store) -> list[ConvertHandler]:
    """The converter's two lanes, `video` and `video.long`, once the indexes its queries need
    are there (common.indexes); its metrics report the queued jobs too, read from MongoDB at
    each scrape (every converter the same values)."""
    store.ensure_indexes(indexes.JOBS_AND_FILES)
    metrics.report_queued_jobs(Jobs(store))
    return [ConvertHandler(config, store, queue) for queue in topology.VIDEO_QUEUES]


if __name__ == "__main__":
    sys.exit(serve("converter", ConverterConfig.from_env, make_handlers))
