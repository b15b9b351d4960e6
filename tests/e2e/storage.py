"""What is stored for a running stack, seen from MongoDB and MySQL, and the operator commands
(`python -m ops`, `flask --app auth`) run as an operator runs them."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator

import MySQLdb
import pymongo
import requests

from common.store import BUCKETS, MP3S, VIDEOS
from tools import devstack

__all__ = ["MP3S", "VIDEOS"]


@contextlib.contextmanager
def database(stack) -> Iterator[pymongo.database.Database]:
    """The stack's MONGODB_DB, with a client of its own."""
    client = pymongo.MongoClient(stack.env["MONGODB_URI"])
    try:
        yield client[stack.env["MONGODB_DB"]]
    finally:
        client.close()


def _chunk_count(db, bucket: str, files_id) -> int:
    return len(list(db[f"{bucket}.chunks"].find({"files_id": files_id}, {"n": 1})))


def inventory(stack) -> dict[str, int]:
    """How many jobs, GridFS files and chunks the stack's database holds.

    nx-27017 answers queries on a `.chunks` collection only by ``files_id``, and lists chunks
    written without a file document as a file of length 0: chunks are counted file by file
    there, all at once on MongoDB.
    """
    with database(stack) as db:
        counts = {"jobs": db["jobs"].count_documents({})}
        for bucket in BUCKETS:
            ids = [doc["_id"] for doc in db[f"{bucket}.files"].find({}, {"_id": 1})]
            counts[f"{bucket}.files"] = len(ids)
            counts[f"{bucket}.chunks"] = max(
                sum(_chunk_count(db, bucket, fid) for fid in ids),
                len(list(db[f"{bucket}.chunks"].find({}, {"n": 1}))))
    return counts


def files(stack, bucket: str, **query) -> list[dict]:
    """The ``bucket``'s file documents matching ``query`` (e.g. ``{"metadata.owner": x}``)."""
    with database(stack) as db:
        return list(db[f"{bucket}.files"].find(query))


def chunks(stack, bucket: str, files_id) -> int:
    """How many chunks of ``files_id`` the bucket holds."""
    with database(stack) as db:
        return _chunk_count(db, bucket, files_id)


def owned(stack, owner: str) -> dict[str, int]:
    """Jobs and files of ``owner`` still stored (files found by their metadata)."""
    with database(stack) as db:
        counts = {"jobs": db["jobs"].count_documents({"owner": owner})}
        for bucket in BUCKETS:
            ids = [d["_id"] for d in db[f"{bucket}.files"].find({"metadata.owner": owner})]
            counts[f"{bucket}.files"] = len(ids)
            counts[f"{bucket}.chunks"] = sum(_chunk_count(db, bucket, fid) for fid in ids)
    return counts


NOTHING = {"jobs": 0, **{f"{b}.{c}": 0 for b in BUCKETS for c in ("files", "chunks")}}


def ops(stack, *args: str, timeout: float = 120) -> str:
    """Run ``python -m ops ARGS`` with the stack's environment, as the CronJob does; stdout."""
    out = subprocess.run([sys.executable, "-m", "ops", *args],
                         env=devstack.process_env(stack.env), cwd=devstack.ROOT,
                         capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"python -m ops {' '.join(args)}: {out.stdout}{out.stderr}"
    return out.stdout


def sweep(stack, **env: str) -> dict:
    """One `python -m ops sweep` (with extra environment); the counts it printed."""
    out = subprocess.run([sys.executable, "-m", "ops", "sweep"],
                         env=devstack.process_env(stack.env, **env), cwd=devstack.ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, f"python -m ops sweep: {out.stdout}{out.stderr}"
    return json.loads(out.stdout.strip().splitlines()[-1])


def auth_command(stack, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    """Run ``flask --app auth ARGS`` with the stack's environment."""
    return subprocess.run([str(devstack.BIN / "flask"), "--app", "auth", *args],
                          env=devstack.process_env(stack.env), cwd=devstack.ROOT, input=stdin,
                          capture_output=True, text=True, timeout=120)


def user_row(stack, email: str) -> tuple | None:
    """The users row of ``email`` in auth's MySQL database, or None."""
    env = stack.env
    conn = MySQLdb.connect(host=env["MYSQL_HOST"], port=int(env["MYSQL_PORT"]),
                           user=env["MYSQL_USER"], password=env["MYSQL_PASSWORD"],
                           database=env["MYSQL_DB"])
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT email, verified FROM users WHERE email = %s", (email,))
            return cur.fetchone()
    finally:
        conn.close()


def bearer(jwt: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {jwt}"}


def call(stack, method: str, path: str, jwt: str | None = None, **kwargs) -> requests.Response:
    """One request to the gateway (with the user's token when given)."""
    headers = {**(bearer(jwt) if jwt else {}), **kwargs.pop("headers", {})}
    return requests.request(method, f"{stack.gateway_url}{path}", headers=headers,
                            timeout=kwargs.pop("timeout", 30), **kwargs)


def wait_until(condition, timeout: float = 30, interval: float = 0.2, what: str = "condition"):
    """Poll ``condition()`` until it returns something true; that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout}s")
        time.sleep(interval)
