"""The upgrade drill: the previous release (its code, from the commit named in
``tools/previous_release``) runs, people use it, it stops; this release migrates what it left
(`python -m ops migrate`: its classic dead-letter and delay queues become quorum queues, the
covers it kept only inside the MP3s become files of their own) and starts. Old users log in with
their passwords, their MP3s and covers download byte for byte, the job the old release queued,
waiting in its classic delay queue, is converted and mailed, the old release's dead letter is
still there to read, and no new one is made."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tarfile
import time
import urllib.parse

import pika
import pytest

from tests.e2e.api import classic_upload, wait_for_job
from tests.e2e.storage import call, sweep
from tools import devstack, isolation
from tools.processes import ROOT

pytestmark = pytest.mark.e2e
PASSWORD = "correct horse battery"
RELEASE_FILE = ROOT / "tools" / "previous_release"


def previous_release() -> str:
    """The commit of the previous release (the first word of tools/previous_release)."""
    return RELEASE_FILE.read_text().split()[0]


@pytest.fixture
def previous_code(tmp_path) -> str:
    """The previous release's ``src`` tree, checked out of the repository; its path."""
    commit = previous_release()
    archive = tmp_path / "release.tar"
    done = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", "-o",
                           str(archive), commit, "src"], capture_output=True, text=True)
    assert done.returncode == 0, (
        f"the previous release {commit} (tools/previous_release) is not in this repository: "
        f"{done.stderr.strip()}")
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path / "release", filter="data")
    return str(tmp_path / "release" / "src")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def dead_letters(url: str) -> dict[str, int]:
    """Messages waiting in each dead-letter queue of the vhost."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        return {queue: channel.queue_declare(queue, passive=True).method.message_count
                for queue in ("video.dlq", "mp3.dlq")}
    finally:
        connection.close()


def retry_later(url: str, seconds: float) -> None:
    """Move the message waiting in `video` into the old release's first delay queue, as its
    converter does after a failed attempt (``x-attempt``, a per-message TTL)."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        method, props, body = channel.basic_get("video", auto_ack=False)
        assert method is not None, "no message waiting in video"
        props.headers = {**(props.headers or {}), "x-attempt": 1}
        props.expiration = str(int(seconds * 1000))
        channel.basic_publish("", "video.retry.1", body, props, mandatory=True)
        channel.basic_ack(method.delivery_tag)
    finally:
        connection.close()


def waiting(url: str, queue: str) -> int:
    """Messages ready in ``queue`` of the vhost."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        return connection.channel().queue_declare(queue, passive=True).method.message_count
    finally:
        connection.close()


def ops(env: dict, *args: str) -> str:
    """``python -m ops ARGS`` of this release; its stdout."""
    out = subprocess.run([sys.executable, "-m", "ops", *args], env=devstack.process_env(env),
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, f"python -m ops {' '.join(args)}: {out.stdout}{out.stderr}"
    return out.stdout


def test_an_upgrade_from_the_previous_release_loses_nothing(stack_factory, previous_code,
                                                            mariadb_server, mailsink, media,
                                                            rabbitmq_node):
    with isolation.mysql_database("mp3upg", mariadb_server) as mysql:
        old = stack_factory(PYTHONPATH=previous_code, **mysql)
        shared = {key: old.env[key] for key in ("MONGODB_DB", "RABBITMQ_URL")}
        email, jwt = old.user(PASSWORD)
        assert old.account_id(jwt) == email, "the previous release names accounts by address"
        unverified, _ = old.user(PASSWORD, verified=False)
        done = [wait_for_job(old, jwt, classic_upload(old, jwt, media(kind))[1]["job_id"])
                for kind in ("mov", "mkv_mp3")]
        assert [job["status"] for job in done] == ["done", "done"], done
        mp3s = {job["job_id"]: sha256(call(old, "GET", f"/download?fid={job['mp3_fid']}",
                                           jwt).content) for job in done}
        pictures = [call(old, "GET", f"/jobs/{job['job_id']}/cover", jwt) for job in done]
        assert [picture.status_code for picture in pictures] == [200, 200]
        covers = {job["job_id"]: sha256(picture.content)
                  for job, picture in zip(done, pictures, strict=True)}
        listed = [job["job_id"] for job in call(old, "GET", "/jobs", jwt).json()["jobs"]]
        url = shared["RABBITMQ_URL"]
        connection = pika.BlockingConnection(pika.URLParameters(url))
        connection.channel().basic_publish("", "video", b'{"job_id": broken')
        connection.close()
        deadline = time.monotonic() + 30
        while waiting(url, "video.dlq") == 0:  # the old converter dead-letters it
            assert time.monotonic() < deadline, "the old release dead-lettered nothing"
            time.sleep(0.2)
        old.processes["converter"].terminate(30)
        status, queued = classic_upload(old, jwt, media("mov"))  # on `video`, not converted yet
        assert status == 202, queued
        mailsink.wait_for(2, to=email)  # the two ready emails of the old release
        old.services.stop()
        retry_later(url, 15)  # its first attempt failed: it waits in a classic delay queue

        # This release's migration, before its services start (docs/operations.md).
        env = {key: value for key, value in old.env.items() if key != "PYTHONPATH"}
        migrated = json.loads(ops(env, "migrate").strip().splitlines()[-1])
        assert migrated["covers_extracted"] == 2 and migrated["covers_not_found"] == 0, migrated
        queues = migrated["queues"]
        assert queues == {"dead_letter_queues_converted": 2, "dead_letters_moved": 1,
                          "legacy_delay_queues_deleted": 4, "delayed_messages_moved": 1}, queues
        vhost = urllib.parse.unquote(urllib.parse.urlsplit(url).path[1:])
        types = {queue["name"]: queue["type"] for queue in json.loads(rabbitmq_node.ctl(
            "list_queues", "-p", vhost, "name", "type", "--formatter", "json"))}
        assert set(types.values()) == {"quorum"} and "video.retry.1" not in types, types
        assert waiting(url, "video.delay.1") == 1  # the retry, still waiting out its delay

        new = stack_factory(**shared, **mysql)  # init-db migrates auth's tables first
        assert new.env["MONGODB_DB"] == old.env["MONGODB_DB"]
        counts = sweep(new)  # hands the address-owned jobs to their account
        assert counts["owners_adopted"] == 1 and counts["owners_removed"] == 0, counts
        expired = call(new, "GET", "/jobs", jwt)
        assert expired.status_code == 401 and "log in again" in expired.json()["error"]
        for address in (email, unverified):
            assert new.login(address, PASSWORD)
        token = new.login(email, PASSWORD)
        converted = wait_for_job(new, token, queued["job_id"])
        assert converted["status"] == "done", converted
        now_listed = [job["job_id"] for job in call(new, "GET", "/jobs", token).json()["jobs"]]
        assert now_listed == [queued["job_id"], *listed]
        for job in done:
            download = call(new, "GET", f"/download?fid={job['mp3_fid']}", token)
            assert download.status_code == 200 and sha256(download.content) == mp3s[job["job_id"]]
            cover = call(new, "GET", f"/jobs/{job['job_id']}/cover", token)
            assert cover.status_code == 200 and sha256(cover.content) == covers[job["job_id"]]
        [ready] = [m for m in mailsink.wait_for(3, to=email)
                   if queued["job_id"] in m.get("X-Mp3converter-Job", "")]
        assert converted["mp3_fid"] in ready.get_body(("plain",)).get_content()
        assert dead_letters(url) == {"video.dlq": 1, "mp3.dlq": 0}  # the old release's only
        [kept] = [json.loads(line) for line in ops(new.env, "dlq-list", "video").splitlines()]
        assert "malformed" in kept["reason"] and kept["body"] == '{"job_id": broken', kept
