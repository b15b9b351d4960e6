"""A source whose chapters are a weapon: thousands of them, huge titles, control characters
and text imitating ffmetadata's own syntax. The MP3 gets a bounded, clean chapter list."""

from __future__ import annotations

import io
import subprocess

import pytest
import requests
from mutagen.id3 import ID3

from tests.e2e.api import classic_upload, wait_for_job
from tools.media import ffmpeg_exe

pytestmark = pytest.mark.security

CHAPTER_COUNT = 3000
EVIL_TITLE = ("\\\n[CHAPTER]\nTIMEBASE=1/1\nSTART=0\nEND=99999\ntitle=injected\x07\x1b[31m"
              + "A" * 5000)


def _escape(text: str) -> str:
    """A value as ffmetadata wants it: a backslash before = ; # \\ and newlines."""
    return "".join("\\" + ch if ch in "=;#\\\n" else ch for ch in text)


def _hostile_video(directory) -> str:
    metadata = directory / "evil.ffmetadata"
    lines = [";FFMETADATA1"]
    for i in range(CHAPTER_COUNT):
        lines += ["[CHAPTER]", "TIMEBASE=1/1000", f"START={i}", f"END={i + 1}",
                  f"title={_escape(f'{i} {EVIL_TITLE}')}"]
    metadata.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = directory / "evil.mkv"
    subprocess.run([ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "lavfi", "-i",
                    "testsrc=size=320x240:rate=10:duration=4", "-f", "lavfi", "-i",
                    "sine=frequency=330:duration=4", "-i", str(metadata), "-map", "0:v",
                    "-map", "1:a", "-map_chapters", "2", "-c:v", "libx264", "-preset",
                    "ultrafast", "-c:a", "libopus", str(out)],
                   check=True, capture_output=True, timeout=120)
    return str(out)


def test_thousands_of_hostile_chapters_become_a_bounded_clean_list(stack, tmp_path):
    _, jwt = stack.user()
    status, body = classic_upload(stack, jwt, _hostile_video(tmp_path))
    assert status == 202, body
    job = wait_for_job(stack, jwt, body["job_id"], timeout=120)
    assert job["status"] == "done", job
    # At most 256, and fewer here: of ffmpeg's chapter listing only its first MiB is read.
    assert 100 < job["chapters"] <= 256
    headers = {"Authorization": f"Bearer {jwt}"}
    mp3 = requests.get(f"{stack.gateway_url}/download", params={"fid": job["mp3_fid"]},
                       headers=headers, timeout=30).content
    tag = ID3(io.BytesIO(mp3))
    chapters = tag.getall("CHAP")
    assert len(chapters) == job["chapters"] and len(tag.getall("CTOC")) == 1
    titles = [str(chapter.sub_frames["TIT2"]) for chapter in chapters]
    assert all(len(title) <= 200 and title.isprintable() for title in titles)
    assert "injected" not in "".join(t for t in titles if not t.startswith(tuple("0123456789")))
    assert len(mp3) < 512 * 1024  # 4 s of audio and its tag: no runaway metadata
