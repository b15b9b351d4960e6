"""Operator tools on the running stack: the orphan sweep and dead-letter re-drive."""

import json
import subprocess
import time

import gridfs
import pytest
from bson import ObjectId

from common.settings import MongoSettings
from common.store import CONVERTING, Store
from tests.e2e.api import classic_upload, wait_for_job
from tools import devstack

pytestmark = pytest.mark.e2e


def gateway_command(stack, *args: str) -> str:
    """Run ``flask --app gateway <args>`` with the stack's environment."""
    out = subprocess.run([str(devstack.BIN / "flask"), "--app", "gateway", *args],
                         env=devstack.process_env(stack.env), capture_output=True, text=True,
                         timeout=60, check=True)
    return out.stdout


def stack_store(stack) -> Store:
    return Store(MongoSettings(stack.env["MONGODB_URI"], stack.env["MONGODB_DB"]))


def test_sweep_queues_an_upload_whose_message_never_went_out(stack_factory, mailsink, media):
    stack = stack_factory(UNPUBLISHED_JOB_SECONDS="1")
    email, jwt = stack.user()
    store = stack_store(stack)
    job_id = ObjectId()
    # Stored and recorded, but the gateway died before publishing the message.
    with open(media("mov"), "rb") as src:
        bucket = gridfs.GridFSBucket(store.client["videos"])
        fid = bucket.upload_from_stream("clip.mov", src, metadata={"owner": email})
    store.create_job(job_id, email, fid, "clip.mov", "video/quicktime", 1)
    time.sleep(1.5)
    assert json.loads(gateway_command(stack, "sweep").splitlines()[-1])["republished"] == 1
    assert wait_for_job(stack, jwt, str(job_id))["status"] == "done"
    mailsink.wait_for(1, to=email)
    assert json.loads(gateway_command(stack, "sweep").splitlines()[-1])["republished"] == 0


@pytest.mark.parametrize("attempts, outcome", [(1, "done"), (3, "failed")])
def test_sweep_recovers_a_job_whose_converter_died(stack_factory, mailsink, media, attempts,
                                                   outcome):
    stack = stack_factory(STUCK_JOB_SECONDS="1", MAX_DELIVERY_ATTEMPTS="3")
    email, jwt = stack.user()
    _, accepted = classic_upload(stack, jwt, media("mkv_mp3"))
    wait_for_job(stack, jwt, accepted["job_id"])
    store = stack_store(stack)  # make it look like a converter died mid-job, its message gone
    store.jobs.update_one({"_id": ObjectId(accepted["job_id"])},
                          {"$set": {"status": CONVERTING, "attempts": attempts,
                                    "updated_at": time.time() - 60, "notified_at": None,
                                    "result_published_at": None}})
    gateway_command(stack, "sweep")
    job = wait_for_job(stack, jwt, accepted["job_id"])
    assert job["status"] == outcome
    if outcome == "failed":
        assert job["error"].startswith("gave up after 3 attempts")
    mails = mailsink.wait_for(2, to=email)
    assert len(mails) == 2


def test_dead_letters_are_listed_with_their_reason_and_can_be_redriven(
        stack_factory, mailsink, media):
    stack = stack_factory(MAX_DELIVERY_ATTEMPTS="2", RETRY_BASE_SECONDS="0.2",
                          SMTP_PORT="9")  # nothing listens on the discard port
    email, jwt = stack.user()
    _, accepted = classic_upload(stack, jwt, media("mov"))
    assert wait_for_job(stack, jwt, accepted["job_id"])["status"] == "done"
    deadline = time.monotonic() + 30
    while not (dead := gateway_command(stack, "dlq-list", "mp3").splitlines()):
        assert time.monotonic() < deadline, "nothing reached mp3.dlq"
        time.sleep(0.5)
    entry = json.loads(dead[0])
    assert entry["job_id"] == accepted["job_id"]
    assert entry["reason"].startswith("gave up after 2 attempts")

    stack.processes["notification"].terminate(10)
    stack.processes["notification"].env["SMTP_PORT"] = str(mailsink.port)
    stack.processes["notification"].start().wait_ready(30)
    assert "moved 1 message" in gateway_command(stack, "dlq-redrive", "mp3")
    [mail] = mailsink.wait_for(1, to=email)
    assert mail["X-Mp3converter-Job"] == accepted["job_id"]
    assert gateway_command(stack, "dlq-list", "mp3").strip() == ""
