"""The sweep: recover lost messages and stuck jobs, expire MP3s, remove orphans and the files
of deleted accounts, forget old webhook sends, check owners' usage against their jobs
(``upkeep.reconcile_usage``, up to USAGE_RECONCILE_OWNERS owners a sweep). Run it every few
minutes.

One sweep runs at a time: each takes the lease `sweep` (``ops.lease``, SWEEP_LEASE_SECONDS,
renewed while it runs) and one that finds it held does nothing. Every step is nonetheless safe
to run twice at the same time (a sweep that stalled past its lease's expiry meets the next
one): each change of a job is a compare-and-set on what was read, so of two sweeps one
publishes, fails or expires a job and the other finds it changed."""

import logging
import urllib.parse
from collections.abc import Callable

import requests

from common import resumable
from common.jobs import Jobs
from common.webhooks import Webhooks
from ops import upkeep
from ops.lease import Lease, LeaseHeld, LeaseLost, iso

log = logging.getLogger(__name__)

LEASE = "sweep"


def run(store, jobs: Jobs, publisher: Callable[[], object], config) -> dict:
    """The sweep under its lease: what each step did, ``{"skipped": ...}`` when another sweep
    holds the lease, or what was done with ``"stopped"`` when the lease was lost midway.
    ``publisher`` makes the broker connection, once the lease is held."""
    lease = Lease(store.db, LEASE, config.sweep_lease_seconds)
    try:
        lease.acquire()
    except LeaseHeld as exc:
        log.info("sweep skipped: another sweep is running",
                 extra={"holder": exc.holder, "until": iso(exc.expires_at)})
        return {"skipped": f"another sweep holds the lease until {iso(exc.expires_at)}",
                "holder": exc.holder}
    lease.keep_renewed()
    counts: dict = {}
    try:
        sweep(jobs, publisher(), config, lease.check, counts)
    except LeaseLost as exc:
        log.warning("sweep stopped: it lost its lease", extra={"reason": str(exc), **counts})
        counts["stopped"] = f"lost the lease: {exc}"
    finally:
        lease.release()
    return counts


def sweep(jobs: Jobs, publisher, config, still_held: Callable[[], None] = lambda: None,
          counts: dict | None = None) -> dict:
    """One pass of every step; returns what each did (also into ``counts``). ``still_held``
    is called before each step and raises to stop the pass."""
    counts = {} if counts is None else counts
    steps = (
        lambda: upkeep.recover_unpublished(jobs, config.unpublished_job_seconds, publisher),
        lambda: upkeep.recover_stuck(jobs, config.stuck_job_seconds,
                                     config.messaging.max_attempts, publisher),
        lambda: upkeep.expire(jobs, publisher),
        lambda: upkeep.remove_expired_uploads(jobs),
        lambda: upkeep.remove_orphans(jobs, config.orphan_grace_seconds),
        lambda: {"deleted_accounts_jobs": purge_deleted_accounts(jobs, config)},
        lambda: adopt_address_owners(jobs, config),
        lambda: {"webhook_sends_forgotten": Webhooks(jobs.store).forget_sent()},
        lambda: upkeep.reconcile_usage(jobs, config.usage_reconcile_owners),
    )
    for step in steps:
        still_held()
        counts.update(step())
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
    """Remove the jobs, files, webhooks and unfinished resumable uploads of accounts auth
    deleted. 0, and a warning, when auth cannot be asked: the next sweep tries again."""
    try:
        deleted = _auth_get(config, "/deleted-users")["deleted"]
    except (requests.RequestException, ValueError, KeyError, TypeError) as exc:
        log.warning("could not list deleted accounts", extra={"error": str(exc)})
        return 0
    removed = 0
    webhooks = Webhooks(jobs.store)
    for account in deleted:
        if account.get("account_id"):
            removed += jobs.delete_owner(account["account_id"])
            webhooks.delete_owner(account["account_id"])
            resumable.remove_owner(jobs.store, account["account_id"])  # unfinished uploads
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
