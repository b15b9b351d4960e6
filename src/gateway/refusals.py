"""Why POST /upload (and a resumable upload, ``gateway.resumable``) refuses an upload, and the
answers that say so: for its size, for its owner's quotas (``common.quotas``), each with what the
client may do about it."""

from common import metrics
from common.units import size as human_size
from common.web import error

ACTIVE_RETRY_SECONDS = 60  # suggested wait when too many conversions are waiting


class UploadRejected(Exception):
    """The upload is not acceptable; carries the HTTP status and message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def too_large(limit: int):
    """413: the file is over MAX_UPLOAD_BYTES."""
    response = error(413, f"file too large: the limit is {limit} bytes")
    response.headers["Connection"] = "close"
    return response


def over_quota(limits, used: int):
    """413: the upload does not fit in what is left of the user's storage quota."""
    quota = limits.storage_quota_bytes
    message = (f"this upload does not fit in your storage quota: you use {human_size(used)} "
               f"of {human_size(quota)}; delete some conversions or wait for their MP3s to "
               "expire")
    raised = limits.once_verified
    if raised and raised.storage_quota_bytes > quota:
        message += (f", or confirm your email address: the quota is then "
                    f"{human_size(raised.storage_quota_bytes)}")
    response = error(413, message)
    response.headers["Connection"] = "close"
    return metrics.refused_for(response, metrics.QUOTA)


def too_many_active(limits):
    """429: the user already has as many conversions waiting as they may."""
    limit = limits.max_active_jobs
    conversions = "conversion" if limit == 1 else "conversions"
    message = f"you have {limit} {conversions} waiting or converting; try again when one finishes"
    raised = limits.once_verified
    if raised and raised.max_active_jobs > limit:
        message += (f", or confirm your email address: you may then have "
                    f"{raised.max_active_jobs} at once")
    response = error(429, message)
    response.headers["Retry-After"] = str(ACTIVE_RETRY_SECONDS)
    return metrics.refused_for(response, metrics.QUOTA)


def not_admitted(exc, limits):
    """The answer to an upload its owner's quotas refuse (``common.quotas.OverLimit``)."""
    if exc.limit == "active_jobs":
        return too_many_active(limits)
    return over_quota(limits, exc.usage.bytes)


def busy():
    """503: too many of the user's uploads began at the same moment to count this one."""
    response = error(503, "too many of your uploads began at once; try again")
    response.headers["Retry-After"] = "1"
    return response
