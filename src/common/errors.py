"""Errors that decide what happens to a message: retry later or dead-letter now."""


class ProcessingError(Exception):
    """Base class for errors raised while handling a message; ``kind`` is a short class of the
    cause for the metrics (e.g. not_media, no_audio, too_long, options, limit, timeout, storage)."""

    def __init__(self, *args, kind: str = "internal"):
        super().__init__(*args)
        self.kind = kind


class RetryableError(ProcessingError):
    """A dependency is down or slow; the same message may succeed later."""


class PermanentError(ProcessingError):
    """The message can never succeed (bad input); fail its job for good (no retry). Dead-lettered
    only when there is no job to fail (a message nothing can read)."""
