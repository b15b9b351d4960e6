"""Conversion options as a stranger with an account sends them: values that parse oddly, text
that is not plain, hand-made multipart bodies, the cover of jobs that are not theirs or not
ready, and sources whose length or picture is not what the options expect."""

from __future__ import annotations

import io
import subprocess
import time

import pymongo
import pytest
import requests
from bson import ObjectId
from mutagen.id3 import ID3
from mutagen.mp3 import MP3

from tests.e2e.api import wait_for_job
from tools.media import ffmpeg_exe

pytestmark = pytest.mark.security

BOUNDARY = "option-abuse-boundary"


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """The sources of this module, made once with the service's ffmpeg."""
    directory = tmp_path_factory.mktemp("option-abuse")
    tone = ["-f", "lavfi", "-i", "sine=frequency=440:duration=10"]
    picture = ["-f", "lavfi", "-i", "testsrc=size=320x240:rate=10:duration=10"]
    made = {}

    def make(name: str, *args: str) -> None:
        subprocess.run([ffmpeg_exe(), "-y", "-loglevel", "error", *args,
                        str(directory / name)], check=True, capture_output=True, timeout=120)
        made[name] = directory / name

    make("tone.mp3", *tone, "-c:a", "libmp3lame", "-q:a", "4")
    # Written as a live stream is: no duration in its header, ffmpeg reports "N/A".
    make("streamed.mkv", *picture, *tone, "-c:v", "libx264", "-preset", "ultrafast",
         "-c:a", "aac", "-live", "1", "-cluster_time_limit", "1000")
    # 60 s of ADTS, loud then silent: ffmpeg guesses its length from the first frames' bitrate.
    make("loud_then_quiet.aac", "-f", "lavfi", "-i", "anoisesrc=d=20:c=white:a=0.5",
         "-f", "lavfi", "-i", "anullsrc=r=48000:cl=mono", "-filter_complex",
         "[1]atrim=0:40[s];[0][s]concat=n=2:v=0:a=1", "-ar", "48000", "-c:a", "aac",
         "-b:a", "256k", "-f", "adts")
    return made


def _fields(stack, jwt: str, parts: list[tuple[str, tuple]]) -> requests.Response:
    """POST /upload with requests' multipart parts, in this order."""
    return requests.post(f"{stack.gateway_url}/upload", files=parts,
                         headers={"Authorization": f"Bearer {jwt}"}, timeout=60)


def _upload(stack, jwt: str, path, **fields: str) -> requests.Response:
    """The options first, then the file."""
    parts = [(name, (None, value)) for name, value in fields.items()]
    parts.append(("file", (path.name, path.read_bytes(), "application/octet-stream")))
    return _fields(stack, jwt, parts)


def _raw(stack, jwt: str, parts: list[bytes], path) -> requests.Response:
    """POST /upload with hand-written part headers and bodies, then the file."""
    body = b"".join(b"--" + BOUNDARY.encode() + b"\r\n" + part + b"\r\n" for part in parts)
    body += (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; "
             f"filename=\"{path.name}\"\r\nContent-Type: audio/mpeg\r\n\r\n").encode()
    body += path.read_bytes() + f"\r\n--{BOUNDARY}--\r\n".encode()
    return requests.post(f"{stack.gateway_url}/upload", data=body, timeout=60, headers={
        "Authorization": f"Bearer {jwt}",
        "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})


def _download(stack, jwt: str, job: dict) -> bytes:
    return requests.get(f"{stack.gateway_url}/download", params={"fid": job["mp3_fid"]},
                        headers={"Authorization": f"Bearer {jwt}"}, timeout=30).content


# -- values the gateway must refuse, each naming its field ----------------------------------
ODD_TIMES = ["1e400", "1e3", "-0", "-1", "+5", "nan", "inf", "0x10", "1_0", "\uff11\uff12",
             "\u0661\u0662", "1:60", "1:00:60", "90.1234", "360001", "9" * 400, "1:2:3:4",
             ":30", "1:", ".5", "5.", "1,5", "1 30"]


def test_odd_trim_values_are_refused_naming_the_field(stack, clips):
    _, jwt = stack.user()
    for value in ODD_TIMES:
        answer = _upload(stack, jwt, clips["tone.mp3"], start=value)
        assert answer.status_code == 422, (value, answer.status_code, answer.text)
        assert "start" in answer.json()["error"], (value, answer.text)
    for start, end in (("00:00:00.000", "00:00:00.000"), ("0", "0"), ("", "0:00"),
                       ("5", "4.999"), ("1:00", "60")):
        answer = _upload(stack, jwt, clips["tone.mp3"], start=start, end=end)
        assert answer.status_code == 422, (start, end, answer.text)
        assert "end" in answer.json()["error"], (start, end, answer.text)


def test_control_characters_and_broken_utf8_in_tags_are_refused(stack, clips):
    _, jwt = stack.user()
    for raw in (b"a\x00b", b"a\x1b[31mb", b"\xed\xa0\x80", b"caf\xe9", b"\xff\xfe"):
        answer = _raw(stack, jwt, [b'Content-Disposition: form-data; name="title"\r\n'
                                   b"Content-Type: text/plain; charset=latin-1\r\n\r\n" + raw],
                      clips["tone.mp3"])
        assert answer.status_code == 422, (raw, answer.text)
        assert "title" in answer.json()["error"]
    answer = _upload(stack, jwt, clips["tone.mp3"], artist="x" * 201)
    assert answer.status_code == 422 and "artist" in answer.json()["error"]


def test_repeated_unknown_file_and_long_named_fields_are_refused(stack, clips):
    _, jwt = stack.user()
    tone = clips["tone.mp3"]
    twice = _raw(stack, jwt, [b'Content-Disposition: form-data; name="quality"\r\n\r\n128',
                              b'Content-Disposition: form-data; name="quality"\r\n\r\n320'], tone)
    assert twice.status_code == 422 and "once" in twice.json()["error"], twice.text
    many = [b'Content-Disposition: form-data; name="nope%d"\r\n\r\nx' % i for i in range(300)]
    assert _raw(stack, jwt, many, tone).status_code == 422
    long_name = b"q" * 60_000
    answer = _raw(stack, jwt, [b'Content-Disposition: form-data; name="' + long_name
                               + b'"\r\n\r\nx'], tone)
    assert answer.status_code in (400, 413, 422), answer.status_code
    assert len(answer.content) < 2000  # the name is not echoed back whole
    as_file = _fields(stack, jwt, [("title", ("t.txt", b"a title", "text/plain")),
                                   ("file", (tone.name, tone.read_bytes(), "audio/mpeg"))])
    assert as_file.status_code == 422 and "title" in as_file.json()["error"]
    # A second file under a name that is no field of the upload is an unknown field too.
    extra = _fields(stack, jwt, [("file", (tone.name, tone.read_bytes(), "audio/mpeg")),
                                 ("thumbnail", ("t.jpg", b"\xff\xd8" * 100, "image/jpeg"))])
    assert extra.status_code == 422, (extra.status_code, extra.text)
    assert "thumbnail" in extra.json()["error"]


# -- text people really write ---------------------------------------------------------------
def test_tags_in_scripts_that_need_joiners_are_kept(stack, clips):
    """Persian writes a zero-width non-joiner inside words, emoji sequences join with a
    zero-width joiner, right-to-left marks and no-break spaces come with pasted text."""
    _, jwt = stack.user()
    title = "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"  # "mi-khaham", with a ZWNJ
    artist = "\U0001f468\u200d\U0001f469\u200d\U0001f467 Family\u00a0Band"
    album = "\u200f\u05e9\u05dc\u05d5\u05dd 2024"
    answer = _upload(stack, jwt, clips["tone.mp3"], title=title, artist=artist, album=album)
    assert answer.status_code == 202, answer.text
    job = wait_for_job(stack, jwt, answer.json()["job_id"])
    assert job["status"] == "done", job
    tag = ID3(io.BytesIO(_download(stack, jwt, job)))
    assert [str(tag[key]) for key in ("TIT2", "TPE1", "TALB")] == [title, artist, album]


def test_rfc2231_file_name_becomes_the_title(stack, clips):
    _, jwt = stack.user()
    part = (b"Content-Disposition: form-data; name=\"file\"; filename=\"fallback.mp3\"; "
            b"filename*=UTF-8''%D0%9F%D0%B5%D1%81%D0%BD%D1%8F%20%F0%9F%8E%B5.mp3\r\n"
            b"Content-Type: audio/mpeg\r\n\r\n")
    body = (f"--{BOUNDARY}\r\n".encode() + part + clips["tone.mp3"].read_bytes()
            + f"\r\n--{BOUNDARY}--\r\n".encode())
    answer = requests.post(f"{stack.gateway_url}/upload", data=body, timeout=60, headers={
        "Authorization": f"Bearer {jwt}",
        "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})
    assert answer.status_code == 202, answer.text
    job = wait_for_job(stack, jwt, answer.json()["job_id"])
    assert job["status"] == "done", job
    assert job["options"]["title"] in ("\u041f\u0435\u0441\u043d\u044f \U0001f3b5", "fallback")


# -- the cover endpoint ---------------------------------------------------------------------
def test_cover_of_jobs_that_are_not_yours_not_ready_or_gone(stack, clips):
    _, jwt = stack.user()
    _, stranger = stack.user()
    auth = {"Authorization": f"Bearer {jwt}"}
    answer = _upload(stack, jwt, clips["streamed.mkv"], start="2", end="5")
    assert answer.status_code == 202, answer.text
    job_id = answer.json()["job_id"]
    job = wait_for_job(stack, jwt, job_id)
    assert job["status"] == "done" and job["cover"], job
    url = f"{stack.gateway_url}/jobs/{job_id}/cover"
    for bad in ("nope", "0" * 24, "f" * 25, "%00", "..%2f..%2fjobs", str(ObjectId())):
        got = requests.get(f"{stack.gateway_url}/jobs/{bad}/cover", headers=auth, timeout=10)
        assert got.status_code == 404, (bad, got.status_code)
    assert requests.get(url, headers={"Authorization": f"Bearer {stranger}"},
                        timeout=10).status_code == 404
    assert requests.get(url, timeout=10).status_code == 401
    head = requests.head(url, headers=auth, timeout=10)
    assert head.status_code == 200 and not head.content
    assert requests.head(url, timeout=10).status_code == 401
    options = requests.options(url, timeout=10)
    assert options.status_code in (200, 204, 401, 405) and b"\xff\xd8" not in options.content

    client = pymongo.MongoClient(stack.env["MONGODB_URI"])
    try:
        records = client[stack.env["MONGODB_DB"]]["jobs"]
        records.update_one({"_id": ObjectId(job_id)}, {"$set": {"status": "converting"}})
        assert requests.get(url, headers=auth, timeout=10).status_code == 409
        records.update_one({"_id": ObjectId(job_id)},
                           {"$set": {"status": "done", "expires_at": time.time() - 5}})
        gone = requests.get(url, headers=auth, timeout=10)
        assert gone.status_code == 410 and "expired" in gone.json()["error"]
    finally:
        client.close()


# -- trims against sources whose length is unknown or guessed -------------------------------
def test_trim_past_the_audio_of_a_stream_without_duration_fails_clearly(stack, clips):
    """The streamed MKV has 10 s of audio and a video: starting at 20 s leaves nothing."""
    _, jwt = stack.user()
    answer = _upload(stack, jwt, clips["streamed.mkv"], start="20")
    assert answer.status_code == 202, answer.text
    job = wait_for_job(stack, jwt, answer.json()["job_id"])
    if job["status"] == "done":
        audio = MP3(io.BytesIO(_download(stack, jwt, job))).info.length
        pytest.fail(f"done with {audio:.3f} s of audio (job says {job['duration']} s): {job}")
    assert "past the end" in job["error"], job


def test_trim_inside_a_stream_whose_length_ffmpeg_guesses_is_kept(stack, clips):
    """60 s of ADTS: ffmpeg estimates 21 s from its loud start; 30..50 s is inside it."""
    _, jwt = stack.user()
    answer = _upload(stack, jwt, clips["loud_then_quiet.aac"], start="30", end="50")
    assert answer.status_code == 202, answer.text
    job = wait_for_job(stack, jwt, answer.json()["job_id"])
    assert job["status"] == "done", job
    assert abs(job["duration"] - 20) < 0.2, job


def test_a_trim_too_short_for_one_mp3_frame_is_explained(stack, clips):
    """20 ms from the middle of 10 s: the start is not past anything."""
    _, jwt = stack.user()
    answer = _upload(stack, jwt, clips["tone.mp3"], start="5", end="5.02")
    if answer.status_code == 422:
        assert "start" in answer.json()["error"] or "end" in answer.json()["error"]
        return
    assert answer.status_code == 202, answer.text
    job = wait_for_job(stack, jwt, answer.json()["job_id"])
    if job["status"] == "failed":
        assert "past the end" not in job["error"], job


# -- the cover picture of extreme videos ----------------------------------------------------
def test_a_video_too_large_to_decode_for_its_cover_still_converts(stack, tmp_path):
    """A 16000x16000 picture: its frame alone needs ~384 MiB; the sound needs a few."""
    _, jwt = stack.user()
    video = tmp_path / "huge.mkv"
    subprocess.run([ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "lavfi", "-i",
                    "color=blue:size=16000x16000:rate=1:duration=2", "-f", "lavfi", "-i",
                    "sine=frequency=440:duration=2", "-c:v", "mjpeg", "-pix_fmt", "yuvj420p",
                    "-q:v", "31", "-c:a", "aac", str(video)],
                   check=True, capture_output=True, timeout=120)
    answer = _upload(stack, jwt, video)
    assert answer.status_code == 202, answer.text
    job = wait_for_job(stack, jwt, answer.json()["job_id"], timeout=120)
    assert job["status"] == "done", job
    assert job["cover"] is None or max(job["cover"]["width"], job["cover"]["height"]) <= 600
