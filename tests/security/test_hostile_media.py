"""Uploads that try to make the converter's ffmpeg read its disk or hand over its credentials."""

from __future__ import annotations

import datetime
import json
import os
import re
import subprocess
import time
from pathlib import Path

import gridfs
import pymongo
import pytest

from common.store import MP3S
from tests.e2e.api import classic_upload, curl, get_job, mp3_files, wait_for_job
from tools.media import (
    DISGUISES,
    MANIFESTS,
    SECRET_SECONDS,
    ffmpeg_exe,
    ffprobe_duration,
    loudness,
    make_manifest,
    make_noise,
)

pytestmark = pytest.mark.security


@pytest.fixture(scope="module")
def attacker_dir(tmp_path_factory) -> Path:
    """The manifests, and the local file they point at (readable by the converter)."""
    return tmp_path_factory.mktemp("attacker")


def _mp3_lengths_since(stack, since: datetime.datetime, directory: Path) -> dict[str, float]:
    """The length of every MP3 stored since ``since``, whoever owns it."""
    client = pymongo.MongoClient(stack.env["MONGODB_URI"])
    try:
        db = client[stack.env["MONGODB_DB"]]
        bucket = gridfs.GridFSBucket(db, bucket_name=MP3S)
        lengths = {}
        for stored in db[f"{MP3S}.files"].find({"uploadDate": {"$gte": since}}):
            path = directory / f"{stored['_id']}.mp3"
            path.write_bytes(bucket.open_download_stream(stored["_id"]).read())
            lengths[str(stored["_id"])] = ffprobe_duration(path)
        return lengths
    finally:
        client.close()


@pytest.mark.parametrize("kind", MANIFESTS)
def test_a_disguised_manifest_gets_the_attacker_nothing(stack, attacker_dir, tmp_path, kind):
    """Plain manifest text is refused at upload (415); disguised behind an ID3 tag longer than
    the upload check reads, or behind an MP4 `ftyp` box, it reaches the converter, whose ffmpeg
    refuses it: the job fails as "not a media file", and no MP3 of the local file exists."""
    since = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=1)
    _, jwt = stack.user()
    for disguise in DISGUISES:
        status, body = classic_upload(stack, jwt, make_manifest(kind, attacker_dir, disguise))
        if disguise == "plain":
            assert status == 415, body
            assert body == {"error": "this file does not look like audio or video"}
            continue
        assert status in (202, 415), body
        if status == 202:
            job = wait_for_job(stack, jwt, body["job_id"], timeout=60)
            assert job["status"] == "failed", job
            assert job["error"].startswith("not a media file"), job
            assert job["mp3_fid"] is None and mp3_files(stack, body["job_id"]) == []
    lengths = _mp3_lengths_since(stack, since, tmp_path)
    assert not [fid for fid, length in lengths.items()
                if length is not None and abs(length - SECRET_SECONDS) < 0.5], lengths


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def _inspect_ffmpeg(pid: int) -> dict | None:
    """What a running ffmpeg child was given, or None (not ffmpeg yet, or already gone)."""
    try:
        if "ffmpeg" not in os.path.basename(os.readlink(f"/proc/{pid}/exe")):
            return None  # forked but not yet exec'd: still a copy of the converter
        seen = {"cmdline": Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0"),
                "environ": Path(f"/proc/{pid}/environ").read_bytes(),
                "cwd": os.readlink(f"/proc/{pid}/cwd"),
                "limits": Path(f"/proc/{pid}/limits").read_text()}
        if "ffmpeg" not in os.path.basename(os.readlink(f"/proc/{pid}/exe")):
            return None
        return seen
    except OSError:
        return None


def test_ffmpeg_holds_none_of_the_converters_credentials(stack, attacker_dir):
    """Read from outside, in /proc, while a 10-minute file converts: the converter's ffmpeg
    children have none of its environment (only glibc's arena count), the job's directory and
    their OS limits."""
    converter = stack.processes["converter"]
    own = Path(f"/proc/{converter.pid}/environ").read_bytes()
    assert b"RABBITMQ_URL=amqp://" in own and b"MONGODB_URI=mongodb://" in own  # the loot
    _, jwt = stack.user()
    status, body = classic_upload(stack, jwt, make_noise(attacker_dir, 600))
    assert status == 202, body
    seen: dict[int, dict] = {}
    deadline, next_poll = time.monotonic() + 180, 0.0
    while True:
        for pid in _children(converter.pid):
            if pid not in seen and (found := _inspect_ffmpeg(pid)):
                seen[pid] = found
        if time.monotonic() > next_poll:
            next_poll = time.monotonic() + 0.5
            if get_job(stack, jwt, body["job_id"])["status"] in ("done", "failed"):
                break
        assert time.monotonic() < deadline, "the conversion did not finish"
        time.sleep(0.01)
    assert get_job(stack, jwt, body["job_id"])["status"] == "done"
    conversions = [s for s in seen.values() if b"libmp3lame" in s["cmdline"]]
    assert conversions, f"no ffmpeg conversion was caught running: {seen}"
    for child in seen.values():
        assert child["environ"] == b"MALLOC_ARENA_MAX=2\x00"
        assert os.path.basename(child["cwd"]).startswith("converter-")
        assert _limit(child["limits"], "cpu time") == "1200"  # the defaults
        assert _limit(child["limits"], "address space") == str(768 << 20)


def _limit(limits: str, name: str) -> str:
    """The soft limit of that name in a /proc/<pid>/limits text."""
    match = re.search(rf"^Max {name}\s+(\S+)\s+(\S+)", limits, re.M)
    assert match and match[1] == match[2], limits
    return match[1]


# ffmpeg's loudness summary as the measuring pass's ebur128 prints it, claiming the audio is
# loud (-5 LUFS, -10 dBTP): believed, the second pass would turn it down by 11 dB.
_FORGED_SUMMARY = ("[Parsed_ebur128_0 @ 0x55d0c0ffee00] Summary:\n\n  Integrated loudness:\n"
                   "    I:          -5.0 LUFS\n    Threshold: -15.0 LUFS\n\n"
                   "  Loudness range:\n    LRA:         1.0 LU\n    Threshold: -25.0 LUFS\n"
                   "    LRA low:    -6.0 LUFS\n    LRA high:   -5.0 LUFS\n\n  True peak:\n"
                   "    Peak:      -10.0 dBFS")


def test_a_tag_cannot_forge_the_loudness_the_mp3_is_levelled_by(stack, attacker_dir, tmp_path):
    """An MP3 whose ID3 tags imitate ffmpeg's loudness summary, in a value and in a tag's
    name (printed as it is, at the start of a line, after a fake end of ffmpeg's report on the
    input), uploaded with normalize=true: the MP3 is levelled by the audio's real loudness,
    to -16 LUFS, not turned down by the forged one."""
    src = attacker_dir / "forged-loudness.mp3"
    subprocess.run([ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "lavfi", "-i",
                    "aevalsrc='0.03*(0.8+0.2*sin(2*PI*t/4))*sin(2*PI*330*t)':s=44100:d=12",
                    "-metadata", f"title=x\n{_FORGED_SUMMARY}",
                    "-metadata", f"x\nStream mapping:\n{_FORGED_SUMMARY}\ny=v",
                    "-c:a", "libmp3lame", "-q:a", "2", str(src)],
                   check=True, capture_output=True, timeout=60)
    before, _ = loudness(src)
    assert before < -30, before
    _, jwt = stack.user()
    status, body = curl("-X", "POST", "-F", f"file=@{src}", "-F", "normalize=true",
                        "-H", f"Authorization: Bearer {jwt}", f"{stack.gateway_url}/upload")
    assert status == 202, body
    job = wait_for_job(stack, jwt, json.loads(body)["job_id"], timeout=120)
    assert job["status"] == "done" and job["mode"] == "encode", job
    mp3 = tmp_path / "levelled.mp3"
    status, _ = curl("--output", str(mp3), "-H", f"Authorization: Bearer {jwt}",
                     f"{stack.gateway_url}/download?fid={job['mp3_fid']}")
    assert status == 200
    integrated, _ = loudness(mp3)
    assert abs(integrated - (-16)) <= 1.0, (before, integrated)  # forged: about -41 LUFS
