"""Conversion options sent with curl's -F fields through the real gateway, read back from the
job, its cover picture and the downloaded MP3."""

import json

import pymongo
import pytest
import requests
from bson import ObjectId
from mutagen.id3 import ID3, PictureType
from mutagen.mp3 import MP3, BitrateMode

from common.store import VIDEOS
from tests.e2e.api import curl, wait_for_job
from tools.media import CHAPTERS, audio_frame_kbps, jpeg_size, make_chaptered_video

pytestmark = pytest.mark.e2e

TITLE, ARTIST = "Nuit étoilée", "Ана Иванова"


def upload(stack, jwt: str, *parts: str) -> tuple[int, dict]:
    """`curl -F ... $GW/upload`, the form parts in the order given."""
    form = [arg for part in parts for arg in ("-F", part)]
    status, body = curl("-X", "POST", *form, "-H", f"Authorization: Bearer {jwt}",
                        f"{stack.gateway_url}/upload")
    return status, json.loads(body)


def _get(stack, jwt: str, path: str) -> requests.Response:
    return requests.get(f"{stack.gateway_url}{path}",
                        headers={"Authorization": f"Bearer {jwt}"}, timeout=10)


def test_options_after_the_file_shape_the_mp3_its_job_and_its_cover(stack, media_dir, tmp_path):
    _, jwt = stack.user()
    _, other_jwt = stack.user()
    video = make_chaptered_video(media_dir)
    status, accepted = upload(stack, jwt, f"file=@{video}", "quality=192", f"title={TITLE}",
                              f"artist={ARTIST}", "cover=auto")
    assert status == 202, accepted
    job_id = accepted["job_id"]

    job = wait_for_job(stack, jwt, job_id)
    assert job["status"] == "done", job
    assert job["options"] == {"quality": "192", "start": None, "end": None, "normalize": False,
                              "title": TITLE, "artist": ARTIST, "album": None, "cover": "auto"}
    assert job["mode"] == "encode" and abs(job["bitrate"] - 192) <= 3, job
    assert job["chapters"] == len(CHAPTERS)
    assert job["cover"]["width"] == 600 and abs(job["cover"]["height"] - 338) <= 1, job
    listed = {j["job_id"]: j for j in _get(stack, jwt, "/jobs").json()["jobs"]}[job_id]
    assert {key: listed[key] for key in ("options", "mode", "bitrate", "cover", "chapters")} == {
        key: job[key] for key in ("options", "mode", "bitrate", "cover", "chapters")}

    picture = _get(stack, jwt, f"/jobs/{job_id}/cover")
    assert picture.status_code == 200
    assert picture.headers["Content-Type"] == "image/jpeg"
    assert jpeg_size(picture.content) == (job["cover"]["width"], job["cover"]["height"])
    assert len(picture.content) == job["cover"]["size"]
    refused = _get(stack, other_jwt, f"/jobs/{job_id}/cover")
    assert refused.status_code == 404 and refused.json()["error"]
    # The picture is a file of its own, served by /cover only: /download knows no such MP3.
    client = pymongo.MongoClient(stack.env["MONGODB_URI"])
    try:
        record = client[stack.env["MONGODB_DB"]]["jobs"].find_one({"_id": ObjectId(job_id)})
    finally:
        client.close()
    not_mp3 = _get(stack, jwt, f"/download?fid={record['cover_fid']}")
    assert not_mp3.status_code == 404 and not_mp3.json() == {"error": "no such file"}

    mp3 = tmp_path / "download.mp3"
    status, _ = curl("--output", str(mp3), "-H", f"Authorization: Bearer {jwt}",
                     f"{stack.gateway_url}/download?fid={job['mp3_fid']}")
    assert status == 200
    tag = ID3(mp3)
    assert tag.version == (2, 4, 0)
    assert (tag["TIT2"].text, tag["TPE1"].text) == ([TITLE], [ARTIST])
    assert "TALB" not in tag
    (apic,) = tag.getall("APIC")
    assert apic.type == PictureType.COVER_FRONT and apic.mime == "image/jpeg"
    assert apic.data == picture.content
    assert [chap.sub_frames["TIT2"].text[0] for chap in sorted(
        tag.getall("CHAP"), key=lambda c: c.start_time)] == [c[0] for c in CHAPTERS]
    info = MP3(mp3).info
    assert (round(info.bitrate / 1000), info.bitrate_mode) == (192, BitrateMode.CBR)
    assert set(audio_frame_kbps(mp3.read_bytes())) == {192}


# case -> (the option parts, the field the error must name)
BAD_OPTIONS = {
    "quality out of range": (["quality=999"], "quality"),
    "start not a time": (["start=abc"], "start"),
    "end before start": (["start=1:30", "end=90"], "end"),
    "unknown field": (["colour=blue"], "colour"),
    "field twice": (["quality=192", "quality=320"], "quality"),
    "control character": (["title=Bell\x07Song"], "title"),
}


@pytest.mark.parametrize("where", ["after the file", "before the file"])
@pytest.mark.parametrize("case", list(BAD_OPTIONS))
def test_a_bad_option_is_refused_with_422_naming_it_and_no_job(stack, media, case, where):
    email, jwt = stack.user()
    parts, field = BAD_OPTIONS[case]
    file_part = f"file=@{media('mov')}"
    ordered = [file_part, *parts] if where == "after the file" else [*parts, file_part]
    status, body = upload(stack, jwt, *ordered)
    assert status == 422, body
    assert set(body) == {"error"} and field in body["error"], body
    assert _get(stack, jwt, "/jobs").json()["jobs"] == []
    client = pymongo.MongoClient(stack.env["MONGODB_URI"])
    try:
        videos = client[stack.env["MONGODB_DB"]][f"{VIDEOS}.files"]
        assert list(videos.find({"metadata.owner": stack.account_id(jwt)})) == []
    finally:
        client.close()
