"""The sweep: recover lost messages and stuck jobs, expire MP3s, remove orphans and the files
of deleted accounts. Every step is safe to repeat; run it every few minutes."""

import logging
import urllib.parse

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
    counts.update(adopt_address_owners(jobs, config))
    log.info("sweep finished", extra=counts)
    return counts


def _auth_get(config, path: str):
    """GET ``path`` of auth: its JSON, or None for a 404; raises requests' errors."""
    response = requests.get(f"{config.auth_url}{path}", timeout=config.auth_timeout)
    if response.status_code == 404:
        return None
    response.raise_for_status()
    return response.json()


def purge_deleted_accounts(jobs: Jobs, config) -> int:
    """Remove the jobs and files of accounts auth deleted. 0, and a warning, when auth cannot
    be asked: the next sweep tries again."""
    try:
        deleted = _auth_get(config, "/deleted-users")["deleted"]
    except (requests.RequestException, ValueError, KeyError, TypeError) as exc:
        log.warning("could not list deleted accounts", extra={"error": str(exc)})
        return 0
    removed = 0
    for account in deleted:
        if account.get("account_id"):
            removed += jobs.delete_owner(account["account_id"])
        else:  # deleted by an earlier release, whose jobs were owned by the address
            removed += jobs.delete_owner(account["email"],
                                         created_before=account.get("registered_again_at"))
    return removed


def adopt_address_owners(jobs: Jobs, config) -> dict:
    """Jobs of an earlier release are owned by an address, not an account id: hand each to the
    account that has the address now, but only those made since that account was created (older
    ones belonged to an account since deleted, and are removed, with their files, as are those
    of an address no account has). Nothing happens where auth cannot be asked."""
    counts = {"owners_adopted": 0, "owners_removed": 0}
    for owner in [owner for owner in jobs.owners() if "@" in owner]:
        try:
            account = _auth_get(config, f"/users/{urllib.parse.quote(owner, safe='@')}")
        except (requests.RequestException, ValueError) as exc:
            log.warning("could not look up a job owner", extra={"error": str(exc)})
            break
        if account is None:
            jobs.delete_owner(owner)
            counts["owners_removed"] += 1
            continue
        jobs.delete_owner(owner, created_before=account["created_at"])
        jobs.hand_over(owner, account["account_id"])
        counts["owners_adopted"] += 1
    return counts
