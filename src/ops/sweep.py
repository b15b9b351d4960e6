"""The sweep: recover lost messages and stuck jobs, expire MP3s, remove orphans and the files
of deleted accounts. Every step is safe to repeat; run it every few minutes."""

import logging

import requests

from common.jobs import Jobs

log = logging.getLogger(__name__)


def sweep(jobs: Jobs, publisher, config) -> dict:
    """One pass of every step; returns what each did."""
    counts = {}
    counts.update(jobs.recover_unpublished(config.unpublished_job_seconds, publisher))
    counts.update(jobs.recover_stuck(config.stuck_job_seconds, config.messaging.max_attempts,
                                     publisher))
    counts.update(jobs.expire())
    counts.update(jobs.remove_orphans(config.orphan_grace_seconds))
    counts["deleted_accounts_jobs"] = purge_deleted_accounts(jobs, config)
    log.info("sweep finished", extra=counts)
    return counts


def purge_deleted_accounts(jobs: Jobs, config) -> int:
    """Remove the jobs and files of accounts auth deleted (made before any new registration of
    the same address). 0, and a warning, when auth cannot be asked: the next sweep tries again."""
    try:
        response = requests.get(f"{config.auth_url}/deleted-users", timeout=config.auth_timeout)
        response.raise_for_status()
        deleted = response.json()["deleted"]
    except (requests.RequestException, ValueError, KeyError) as exc:
        log.warning("could not list deleted accounts", extra={"error": str(exc)})
        return 0
    removed = 0
    for account in deleted:
        removed += jobs.delete_owner(account["email"],
                                     created_before=account.get("registered_again_at"))
    return removed
