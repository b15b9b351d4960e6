"""Operator tools on the running stack (`python -m ops`): the sweep and dead-letter re-drive."""

import json
import time

import gridfs
import pika
import pytest
from bson import ObjectId

from common import messages, topology
from common.broker import Publisher
from common.errors import RetryableError
from common.jobs import Jobs, Status
from common.settings import MongoSettings
from common.store import VIDEOS, Store
from tests.e2e.api import classic_upload, wait_for_job
from tools import devstack

pytestmark = pytest.mark.e2e
UNREACHABLE_BROKER = "amqp://guest:guest@127.0.0.1:1/%2F"


def ops_command(stack, *args: str) -> str:
    """Run ``python -m ops <args>`` with the stack's environment, as the CronJob does; stdout."""
    log = stack.logs["gateway"].parent / "ops.log"  # beside the stack's other logs
    out = devstack.ops_command(list(args), stack.env, log, timeout=60)
    assert out.returncode == 0, f"python -m ops {' '.join(args)}: {out.stdout}{out.stderr}"
    return out.stdout


def sweep(stack) -> dict:
    """One sweep; the counts it printed."""
    return json.loads(ops_command(stack, "sweep").splitlines()[-1])


def stack_store(stack) -> Store:
    return Store(MongoSettings(stack.env["MONGODB_URI"], stack.env["MONGODB_DB"]))


def test_sweep_queues_an_upload_whose_message_never_went_out(stack_factory, mailsink, media):
    stack = stack_factory(UNPUBLISHED_JOB_SECONDS="1")
    email, jwt = stack.user()
    owner = stack.account_id(jwt)
    store = stack_store(stack)
    job_id = ObjectId()
    # Stored and recorded, but the broker could not be reached (or the gateway died) before
    # the message went out.
    with open(media("mov"), "rb") as src:
        bucket = gridfs.GridFSBucket(store.db, bucket_name=VIDEOS)
        fid = bucket.upload_from_stream("clip.mov", src,
                                        metadata={"owner": owner, "job_id": str(job_id)})
    with pytest.raises(RetryableError, match="broker unreachable"):
        Jobs(store).create(job_id, owner, fid, "clip.mov", "video/quicktime", 1,
                           Publisher(UNREACHABLE_BROKER, 3))
    time.sleep(1.5)
    first = sweep(stack)  # the failed publish gave its place back: the job is sent again
    assert first["republished"] + first["dispatched"] == 1, first
    assert wait_for_job(stack, jwt, str(job_id))["status"] == "done"
    mailsink.wait_for(1, to=email)
    second = sweep(stack)
    assert second["republished"] + second["dispatched"] == 0, second
    store.close()


@pytest.mark.parametrize("attempts, outcome", [(1, "done"), (3, "failed")])
def test_sweep_recovers_a_job_whose_converter_died(stack_factory, mailsink, media, attempts,
                                                   outcome):
    # The source video is kept so the finished job can be made to look unfinished again.
    stack = stack_factory(STUCK_JOB_SECONDS="1", MAX_DELIVERY_ATTEMPTS="3",
                          KEEP_SOURCE_VIDEOS="true")
    email, jwt = stack.user()
    _, accepted = classic_upload(stack, jwt, media("mkv_mp3"))
    wait_for_job(stack, jwt, accepted["job_id"])
    store = stack_store(stack)  # make it look like a converter died mid-job, its message gone
    store.jobs.update_one({"_id": ObjectId(accepted["job_id"])},
                          {"$set": {"status": Status.CONVERTING.value, "attempts": attempts,
                                    "updated_at": time.time() - 60, "notified_at": None,
                                    "result_published_at": None}})
    store.close()
    sweep(stack)
    job = wait_for_job(stack, jwt, accepted["job_id"])
    assert job["status"] == outcome
    if outcome == "failed":
        assert job["error"].startswith("gave up after 3 attempts")
    mails = mailsink.wait_for(2, to=email)
    assert len(mails) == 2


def test_dead_letters_are_listed_with_their_reason_and_can_be_redriven(
        stack_factory, mailsink, media):
    stack = stack_factory(MAX_DELIVERY_ATTEMPTS="2", RETRY_BASE_SECONDS="0.2")
    email, jwt = stack.user()  # auth mails the verification link: its SMTP must work
    stack.processes["notification"].terminate(10)
    stack.processes["notification"].env["SMTP_PORT"] = "9"  # nothing listens on the discard port
    stack.processes["notification"].start().wait_ready(30)
    _, accepted = classic_upload(stack, jwt, media("mov"))
    assert wait_for_job(stack, jwt, accepted["job_id"])["status"] == "done"
    deadline = time.monotonic() + 30
    while not (dead := ops_command(stack, "dlq-list", "mp3").splitlines()):
        assert time.monotonic() < deadline, "nothing reached mp3.dlq"
        time.sleep(0.5)
    entry = json.loads(dead[0])
    assert entry["job_id"] == accepted["job_id"]
    assert entry["reason"].startswith("gave up after 2 attempts")
    # A dead letter whose job is gone (deleted since): nothing left to retry.
    gone = messages.Mp3Message(str(ObjectId()), str(ObjectId()), email, error="no audio track")
    connection = pika.BlockingConnection(pika.URLParameters(stack.env["RABBITMQ_URL"]))
    connection.channel().basic_publish(
        "", topology.dlq(topology.MP3), messages.encode(gone),
        pika.BasicProperties(delivery_mode=2, headers={"x-error": "gave up after 2 attempts"}))
    connection.close()
    assert len(ops_command(stack, "dlq-list", "mp3").splitlines()) == 2

    stack.processes["notification"].terminate(10)
    stack.processes["notification"].env["SMTP_PORT"] = str(mailsink.port)
    stack.processes["notification"].start().wait_ready(30)
    assert ops_command(stack, "dlq-redrive", "mp3").strip() == (
        "moved 1 message(s) back to mp3; dropped 1 with nothing left to retry")
    [mail] = mailsink.wait_for(1, to=email)
    assert mail["X-Mp3converter-Job"] == accepted["job_id"]
    assert ops_command(stack, "dlq-list", "mp3").strip() == ""
    time.sleep(2)
    assert len(mailsink.messages(to=email)) == 1  # nothing for the job that is gone
