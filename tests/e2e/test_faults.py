"""Fault injection against the real services: nothing accepted is lost, nothing happens twice."""

import concurrent.futures
import json
import signal
import subprocess
import threading
import time

import pika
import pytest
import requests

from common.jobs import Jobs
from common.settings import MongoSettings
from common.store import Store
from tests.conftest import mysql_database
from tests.e2e.api import classic_upload, get_job, mp3_files, wait_for_job
from tools import devstack
from tools.media import ffmpeg_exe
from tools.processes import port_open

pytestmark = [pytest.mark.e2e, pytest.mark.fault]

LONG_SECONDS = 2400  # long enough that converting it takes several seconds here


@pytest.fixture(scope="module")
def long_audio(tmp_path_factory):
    """A 40-minute FLAC-in-Matroska file: cheap to make and to read, slow enough to convert."""
    path = tmp_path_factory.mktemp("long") / "lecture.mka"
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
                    "-i", f"sine=frequency=330:sample_rate=44100:duration={LONG_SECONDS}",
                    "-c:a", "flac", str(path)], check=True, timeout=120)
    return path


def wait_until(condition, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} not within {timeout}s"
        time.sleep(0.2)


def queue_depth(stack, queue: str) -> int:
    """Messages in ``queue`` (ready and unacknowledged)."""
    connection = pika.BlockingConnection(pika.URLParameters(stack.env["RABBITMQ_URL"]))
    try:
        ch = connection.channel()
        return ch.queue_declare(queue, passive=True).method.message_count
    finally:
        connection.close()


def assert_exactly_one(stack, mailsink, email: str, job_ids: list[str]) -> None:
    """Each job has one MP3; the user got one email per job, no more."""
    for job_id in job_ids:
        assert len(mp3_files(stack, job_id)) == 1, job_id
    mails = mailsink.wait_for(len(job_ids), to=email, timeout=60)
    time.sleep(2)
    mails = mailsink.messages(to=email)
    assert sorted(m["X-Mp3converter-Job"] for m in mails) == sorted(job_ids)


def test_kill_9_mid_conversion_then_a_new_converter_gives_one_mp3_and_one_email(
        stack_factory, mailsink, long_audio):
    stack = stack_factory()
    email, jwt = stack.user()
    _, accepted = classic_upload(stack, jwt, long_audio)
    wait_for_job(stack, jwt, accepted["job_id"], statuses=("converting",), progress=5)
    converter = stack.processes["converter"]
    converter.kill()
    converter.start().wait_ready(30)
    job = wait_for_job(stack, jwt, accepted["job_id"], timeout=120)
    assert job["status"] == "done", job
    assert_exactly_one(stack, mailsink, email, [accepted["job_id"]])


def test_sigterm_mid_job_finishes_it_acks_and_exits_0(stack_factory, mailsink, long_audio):
    stack = stack_factory(SHUTDOWN_GRACE_SECONDS="120")
    email, jwt = stack.user()
    _, accepted = classic_upload(stack, jwt, long_audio)
    wait_for_job(stack, jwt, accepted["job_id"], statuses=("converting",), progress=5)
    converter = stack.processes["converter"]
    converter.send_signal(signal.SIGTERM)
    assert converter.wait(120) == 0
    assert get_job(stack, jwt, accepted["job_id"])["status"] == "done"
    assert queue_depth(stack, "video") == 0  # acked: nothing left to redeliver
    assert_exactly_one(stack, mailsink, email, [accepted["job_id"]])


def test_broker_outage_every_202_ends_done_every_refusal_is_503(
        stack_factory, fresh_rabbitmq_node, mailsink, media):
    # The stack has a RabbitMQ node of its own, which this test stops and starts again.
    # Uploads every 0.2 s pile up while the broker is away: no active-job limit in the way.
    broker = fresh_rabbitmq_node
    stack = stack_factory(RABBITMQ_URL=broker.amqp_url(), USER_MAX_ACTIVE_JOBS="1000")
    email, jwt = stack.user()
    video = media("mkv_mp3")
    results: list[tuple[int, dict]] = []
    stop = threading.Event()

    def upload_loop():
        while not stop.is_set():
            results.append(classic_upload(stack, jwt, video))
            time.sleep(0.2)

    def answered(status: int, since: int = 0) -> bool:
        return any(code == status for code, _ in results[since:])

    uploader = threading.Thread(target=upload_loop)
    uploader.start()
    try:
        wait_until(lambda: answered(202), "an upload accepted before the outage")
        broker.stop()
        assert not port_open("127.0.0.1", broker.port)
        wait_until(lambda: answered(503), "an upload refused during the outage")
        refused_at = len(results)
        wait_until(lambda: len(results) >= refused_at + 3, "more uploads during the outage")
        broker.start()
        back_at = len(results)
        wait_until(lambda: answered(202, back_at), "an upload accepted after the outage")
    finally:
        stop.set()
        uploader.join()
        if not broker.alive:
            broker.start()
    # A job recorded while the broker was down, whose message could not go out, is queued by
    # the next sweep (the CronJob), as an operator's cluster runs it every few minutes.
    time.sleep(1)
    swept = devstack.ops_command(["sweep"], {**stack.env, "UNPUBLISHED_JOB_SECONDS": "1"},
                                 stack.logs["gateway"].parent / "ops.log")
    assert swept.returncode == 0, swept.stderr

    statuses = [status for status, _ in results]
    assert set(statuses) <= {202, 503}, statuses
    assert 503 in statuses and statuses[-1] == 202, statuses
    refused = [body for status, body in results if status == 503]
    assert all("unavailable" in body["error"] for body in refused)
    accepted = [body["job_id"] for status, body in results if status == 202]
    for job_id in accepted:
        assert wait_for_job(stack, jwt, job_id, timeout=120)["status"] == "done"
    assert_exactly_one(stack, mailsink, email, accepted)
    jobs = requests.get(f"{stack.gateway_url}/jobs", headers={"Authorization": f"Bearer {jwt}"},
                        timeout=10).json()["jobs"]
    assert len(jobs) == len(accepted)  # refused uploads left nothing behind


def test_smtp_down_for_30s_the_email_arrives_once_after_it_returns(
        stack_factory, mailsink, media):
    stack = stack_factory(RETRY_BASE_SECONDS="4", RETRY_MAX_SECONDS="20",
                          MAX_DELIVERY_ATTEMPTS="6")
    email, jwt = stack.user()
    mailsink.process.terminate(10)
    try:
        _, accepted = classic_upload(stack, jwt, media("mov"))
        assert wait_for_job(stack, jwt, accepted["job_id"])["status"] == "done"
        time.sleep(30)
    finally:
        mailsink.process.start().wait_ready(30)
    assert mailsink.messages(to=email) == []
    assert_exactly_one(stack, mailsink, email, [accepted["job_id"]])


def test_mongodb_down_gives_503_then_works_again_without_restarts(
        stack, mongodb_server, media):
    _, jwt = stack.user()
    mongodb_server.terminate(10)
    try:
        status, body = classic_upload(stack, jwt, media("mov"))
        assert status == 503 and "storage unavailable" in body["error"]
        resp = requests.get(f"{stack.gateway_url}/jobs",
                            headers={"Authorization": f"Bearer {jwt}"}, timeout=30)
        assert resp.status_code == 503
        assert requests.get(f"{stack.gateway_url}/readyz", timeout=30).status_code == 503
    finally:
        mongodb_server.start().wait_ready(30)
    status, body = classic_upload(stack, jwt, media("mov"))
    assert status == 202, body
    assert wait_for_job(stack, jwt, body["job_id"])["status"] == "done"


def test_mysql_down_login_is_503_and_recovers(stack_factory, fresh_mariadb_server):
    # auth has a MariaDB server of its own, which this test stops and starts again.
    mariadb = fresh_mariadb_server
    with mysql_database(mariadb) as settings:
        stack = stack_factory(**settings)
        try:
            email, _ = stack.user(password="mysql outage test")
            mariadb.stop()
            try:
                assert not port_open("127.0.0.1", mariadb.port)
                resp = requests.post(f"{stack.gateway_url}/login",
                                     auth=(email, "mysql outage test"), timeout=30)
                assert resp.status_code == 503 and resp.json()["error"]
                assert requests.get(f"{stack.auth_url}/readyz", timeout=30).status_code == 503
            finally:
                mariadb.start()
            deadline = time.monotonic() + 30
            while True:
                resp = requests.post(f"{stack.gateway_url}/login",
                                     auth=(email, "mysql outage test"), timeout=30)
                if resp.status_code == 200 or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            assert resp.status_code == 200
        finally:
            stack.services.stop()  # before its database goes


def test_a_poison_message_goes_to_the_dlq_and_a_corrupt_video_fails_without_blocking(
        stack_factory, mailsink, media, tmp_path):
    stack = stack_factory()
    email, jwt = stack.user()
    connection = pika.BlockingConnection(pika.URLParameters(stack.env["RABBITMQ_URL"]))
    connection.channel().basic_publish("", "video", b"{not json",
                                       pika.BasicProperties(delivery_mode=2))
    connection.close()
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\xde\xad\xbe\xef" * 5000)
    _, bad = classic_upload(stack, jwt, corrupt)
    _, good = classic_upload(stack, jwt, media("mkv_mp3"))

    assert wait_for_job(stack, jwt, good["job_id"])["status"] == "done"
    failed = wait_for_job(stack, jwt, bad["job_id"])
    assert failed["status"] == "failed" and "cannot read" in failed["error"]
    mails = mailsink.wait_for(2, to=email)
    assert any(m["Subject"].startswith("Could not convert corrupt.mp4") for m in mails)

    listing = devstack.ops_command(["dlq-list", "video"], stack.env, tmp_path / "ops.log")
    assert listing.returncode == 0, listing.stderr
    dead = [json.loads(line) for line in listing.stdout.splitlines() if line.startswith("{")]
    # only the message nothing could read waits for an operator; the corrupt video's job
    # ended (failed, its owner told), so a re-drive could only fail again
    assert len(dead) == 1 and "malformed message" in dead[0]["reason"], dead
    assert queue_depth(stack, "video") == 0


def test_30_concurrent_uploads_with_2_converters_no_losses_no_duplicates(
        stack_factory, mailsink, media, tmp_path):
    stack = stack_factory(USER_MAX_ACTIVE_JOBS="30")  # one user's 30 uploads all accepted
    second = devstack.consumer_process("converter", stack.env, tmp_path / "second")
    second.start().wait_ready(30)
    try:
        email, jwt = stack.user()
        video = media("mkv_mp3")
        with concurrent.futures.ThreadPoolExecutor(10) as pool:
            results = list(pool.map(lambda _: classic_upload(stack, jwt, video), range(30)))
        assert [status for status, _ in results] == [202] * 30
        job_ids = [body["job_id"] for _, body in results]
        for job_id in job_ids:
            assert wait_for_job(stack, jwt, job_id, timeout=180)["status"] == "done"
        assert_exactly_one(stack, mailsink, email, job_ids)
        converters = (stack.processes["converter"], second)
        worked = [p for p in converters if '"converted"' in p.log_text()]
        assert len(worked) == 2  # both converters took jobs
    finally:
        second.terminate(30)


def test_heartbeats_keep_the_connection_through_a_conversion_many_heartbeats_long(
        stack_factory, rabbitmq_node, mailsink, long_audio):
    # A 1 s heartbeat: the broker drops a connection that stays silent for ~2 s, far less
    # than this conversion takes, so only a loop that keeps beating while ffmpeg runs survives.
    stack = stack_factory()
    url = stack.env["RABBITMQ_URL"] + "?heartbeat=1"
    converter = stack.processes["converter"]
    converter.terminate(30)
    converter.env["RABBITMQ_URL"] = url
    converter.start().wait_ready(30)
    email, jwt = stack.user()
    _, accepted = classic_upload(stack, jwt, long_audio)
    started = time.monotonic()
    job = wait_for_job(stack, jwt, accepted["job_id"], timeout=120)
    assert time.monotonic() - started > 4, "the conversion was too short to prove anything"
    assert job["status"] == "done", job
    deadline = time.monotonic() + 30
    # the ack went through on that connection (on the job's lane: a 40-minute job is long)
    while unsettled(rabbitmq_node, stack, "video") + unsettled(rabbitmq_node, stack,
                                                                "video.long"):
        assert time.monotonic() < deadline, "the video message was never acked"
        time.sleep(0.5)
    assert "connection lost" not in converter.log_text()
    assert "already finished" not in converter.log_text()  # never redelivered
    assert stack_job_attempts(stack, accepted["job_id"]) == 1
    assert_exactly_one(stack, mailsink, email, [accepted["job_id"]])


def unsettled(node, stack, queue: str) -> int:
    """Messages in ``queue`` that are ready or delivered but not yet acknowledged."""
    vhost = stack.env["RABBITMQ_URL"].rsplit("/", 1)[1]
    out = node.ctl("list_queues", "-p", vhost, "name", "messages_ready",
                   "messages_unacknowledged")
    for line in out.splitlines():
        name, *counts = line.split()
        if name == queue:
            return sum(int(c) for c in counts)
    raise AssertionError(f"no queue {queue} in {out}")


def stack_job_attempts(stack, job_id: str) -> int:
    """How many conversions of the job were started."""
    store = Store(MongoSettings(stack.env["MONGODB_URI"], stack.env["MONGODB_DB"]))
    try:
        return Jobs(store).get(job_id)["attempts"]
    finally:
        store.close()
