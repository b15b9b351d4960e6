"""Disaster recovery: both databases lost while users have accounts, MP3s and a job waiting,
then `python -m ops restore` of the last `python -m ops backup --verify`."""

from __future__ import annotations

import contextlib
import hashlib
import json
import subprocess
import sys
import time

import pika
import pytest

from common import topology
from tests.conftest import mysql_database
from tests.e2e.api import classic_upload, wait_for_job
from tests.e2e.storage import call, database, sweep
from tools import devstack

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery"
COMPARED = ("job_id", "status", "filename", "size", "video_fid", "mp3_fid", "mp3_size",
            "duration", "error", "expires_at", "options", "mode", "bitrate", "cover", "chapters")


def ops(env: dict, *args: str) -> dict:
    """``python -m ops ARGS`` as the operator runs it; the JSON of its last line."""
    out = subprocess.run([sys.executable, "-m", "ops", *args], env=devstack.process_env(env),
                         cwd=devstack.ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, f"ops {' '.join(args)}: {out.stdout}{out.stderr}"
    return json.loads(out.stdout.strip().splitlines()[-1])


def what_users_see(stack, jwt: str) -> dict:
    """Their jobs as the API lists them, and the SHA-256 of every MP3 and cover they can get."""
    jobs = [{k: job.get(k) for k in COMPARED}
            for job in call(stack, "GET", "/jobs", jwt).json()["jobs"]]
    files = {}
    for job in jobs:
        if job["status"] == "done":
            mp3 = call(stack, "GET", f"/download?fid={job['mp3_fid']}", jwt)
            cover = call(stack, "GET", f"/jobs/{job['job_id']}/cover", jwt)
            assert mp3.status_code == 200 and cover.status_code == 200, (mp3.text, cover.text)
            files[job["job_id"]] = (hashlib.sha256(mp3.content).hexdigest(),
                                    hashlib.sha256(cover.content).hexdigest())
    return {"jobs": jobs, "files": files}


def test_both_databases_restored_from_a_backup_give_back_logins_jobs_and_mp3s(
        stack_factory, mariadb_server, media, tmp_path):
    with mysql_database(mariadb_server) as mysql:
        name = mysql["MYSQL_DB"]
        with contextlib.closing(mariadb_server.connect()) as conn, conn.cursor() as cur:
            for host in ("localhost", "127.0.0.1"):  # the trial restore's scratch databases
                cur.execute(f"GRANT ALL ON `{name}\\_verify\\_%`.* TO '{name}'@'{host}'")
        stack = stack_factory(**mysql)
        env = {**stack.env, "BACKUP_DIR": str(tmp_path / "backups")}

        alice, alice_jwt = stack.user(PASSWORD)
        bob, bob_jwt = stack.user(PASSWORD, verified=False)
        carol, _ = stack.user(PASSWORD)
        uploads = [(alice_jwt, "mov"), (alice_jwt, "mkv_mp3"), (bob_jwt, "mov"),
                   (alice_jwt, "webm_opus")]
        accepted = [classic_upload(stack, jwt, media(kind))[1]["job_id"]
                    for jwt, kind in uploads]
        for (jwt, _), job_id in zip(uploads, accepted, strict=True):
            assert wait_for_job(stack, jwt, job_id, timeout=120)["status"] == "done"
        with database(stack) as db:  # the last one's retention is over: the sweep expires it
            db["jobs"].update_one({"owner": stack.account_id(alice_jwt),
                                   "filename": "clip.webm"},
                                  {"$set": {"expires_at": time.time() - 1}})
        assert sweep(stack)["expired"] == 1
        assert call(stack, "DELETE", "/account", auth=(carol, PASSWORD)).status_code == 204

        # A job waiting: no converter runs, and the broker loses its message (a new cluster).
        stack.services["converter"].terminate(10)
        status, waiting = classic_upload(stack, alice_jwt, media("mov"))
        assert status == 202
        connection = pika.BlockingConnection(pika.URLParameters(stack.env["RABBITMQ_URL"]))
        connection.channel().queue_purge(topology.VIDEO)
        connection.close()
        mails_before = len(stack.mailsink.messages(alice))
        before = {jwt: what_users_see(stack, jwt) for jwt in (alice_jwt, bob_jwt)}
        assert [j["status"] for j in before[alice_jwt]["jobs"]] == [
            "queued", "expired", "done", "done"]
        assert len(before[alice_jwt]["files"]) == 2 and len(before[bob_jwt]["files"]) == 1

        backup = ops(env, "backup", "--verify")
        assert backup["ok"] and backup["verified"], backup

        # Both databases are lost.
        with contextlib.closing(mariadb_server.connect()) as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE `{name}`")
        with database(stack) as db:
            db.client.drop_database(db.name)
        assert call(stack, "POST", "/login", auth=(alice, PASSWORD)).status_code != 200

        restored = ops(env, "restore", backup["set"])
        assert restored["reconciled"] == {"expired": 0, "failed": 0, "requeued": 1,
                                          "covers_dropped": 0}, restored
        for email in (alice, bob):
            assert call(stack, "POST", "/login", auth=(email, PASSWORD)).status_code == 200
        assert call(stack, "POST", "/login", auth=(carol, PASSWORD)).status_code == 401
        after = {jwt: what_users_see(stack, jwt) for jwt in (alice_jwt, bob_jwt)}
        assert after == before  # the same jobs, every MP3 and cover byte for byte

        # The next sweep dispatches the waiting job again; a converter makes it, one email.
        assert sweep(stack)["dispatched"] == 1
        stack.services["converter"].start().wait_ready(30)
        job = wait_for_job(stack, alice_jwt, waiting["job_id"], timeout=120)
        assert job["status"] == "done", job
        mails = stack.mailsink.wait_for(mails_before + 1, to=alice, timeout=60)
        time.sleep(2)
        assert len(stack.mailsink.messages(alice)) == mails_before + 1
        assert job["mp3_fid"] in mails[-1].get_content()
