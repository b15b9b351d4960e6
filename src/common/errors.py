"""Errors that decide what happens to a message: retry later or dead-letter now."""


class ProcessingError(Exception):
    """Base class for errors raised while handling a message."""


class RetryableError(ProcessingError):
    """A dependency is down or slow; the same message may succeed later."""


class PermanentError(ProcessingError):
    """The message can never succeed (bad input); fail the job and dead-letter it."""
