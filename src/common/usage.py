"""Each owner's usage as one document, kept up to date by the jobs' transitions.

`usage`, one document per owner (``_id``: the owner):

    {"_id": owner, "bytes": videos waiting or converting + MP3s kept,
     "active_jobs": queued + converting, "jobs": {status: count},
     "recorded": {job id: epoch seconds}  (jobs created whose upload may still be counted),
     "version": uuid of the last change, "updated_at", "checked_at" (last reconciled),
     "partial": true  (made by a change before any count: not to be trusted)}

What one job counts is one rule, ``common.jobs.usage_of``; each transition that changes it
adds ``usage_of(after) - usage_of(before)`` here (``add``) right after its compare-and-set on the
job succeeds, so it is added once. ``common.quotas`` reads the document (one ``find_one``),
computes it from the jobs when it is missing or ``partial``, and reconciles it (the sweep,
``ops.upkeep.reconcile_usage``): a process that died between its job's write and ``add`` leaves
the document wrong until then. This module writes the collection and nothing else does but
``common.quotas``' reconciliation.
"""

import uuid

from common.store import now

USAGE = "usage"


def add(db, owner: str, delta: dict[str, int], recorded=None, forgotten=None) -> None:
    """Add ``delta`` (field -> amount: ``bytes``, ``active_jobs``, ``jobs.<status>``) to the
    owner's document, and give it a new version. ``recorded``: the id of a job just created
    (its upload, still counted until released, now counts as the job); ``forgotten``: that
    of a job deleted. An owner with no document gets a ``partial`` one (it holds this change
    alone, not a count: it is computed from the jobs before it is trusted)."""
    moment = now()
    update: dict = {"$set": {"version": uuid.uuid4().hex, "updated_at": moment},
                    "$setOnInsert": {"partial": True}}
    if delta:
        update["$inc"] = delta
    if recorded is not None:
        update["$set"][f"recorded.{recorded}"] = moment
    if forgotten is not None:
        update["$unset"] = {f"recorded.{forgotten}": ""}
    db[USAGE].update_one({"_id": owner}, update, upsert=True)


def unrecord(db, owner: str, job_ids) -> None:
    """Drop jobs from ``recorded``: their uploads are no longer counted (released), so the
    document keeps only the uploads still in flight."""
    keys = [str(job_id) for job_id in job_ids]
    if keys:
        db[USAGE].update_one({"_id": owner},
                             {"$unset": {f"recorded.{key}": "" for key in keys}})


def forget(db, owner: str) -> None:
    """Remove the owner's document (their account is deleted, with all their jobs)."""
    db[USAGE].delete_one({"_id": owner})
