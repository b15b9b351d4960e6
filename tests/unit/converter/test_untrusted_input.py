"""Hostile inputs straight to the ffmpeg wrapper: playlists, manifests and forged metadata."""

import subprocess
import threading

import pytest

from common.errors import PermanentError
from converter import ffmpeg, plan
from converter.limits import Limits
from gateway.sniff import PROBE_BYTES, media_type
from tests.conftest import ffprobe_codec, ffprobe_duration
from tools.media import DISGUISES, MANIFESTS, SECRET_SECONDS, ffmpeg_exe, make_manifest

FFMPEG = ffmpeg_exe()
NOT_MEDIA = "not a media file"


@pytest.fixture(scope="module")
def hostile_dir(tmp_path_factory):
    """Where the manifests and the local file they point at live."""
    return tmp_path_factory.mktemp("hostile")


def _convert(src, dst, info=None, **limits):
    info = info or ffmpeg.MediaInfo(SECRET_SECONDS, "aac", "mono")
    run = ffmpeg.FFmpeg(FFMPEG, Limits(**limits), 60, threading.Event())
    return run.convert(str(src), str(dst), info, plan.plain(info), lambda _: None)


@pytest.mark.parametrize("kind", ["dash", "hls", "ffconcat"])
def test_without_the_guard_ffmpeg_reads_the_local_file(hostile_dir, kind):
    """The samples are real attacks: ffmpeg on its own makes an MP3 of the file they name."""
    out = hostile_dir / f"unguarded-{kind}.mp3"
    subprocess.run([FFMPEG, "-nostdin", "-y", "-loglevel", "error",
                    "-i", str(make_manifest(kind, hostile_dir)), "-vn", str(out)],
                   cwd=hostile_dir, capture_output=True, timeout=120, check=True)
    assert ffprobe_duration(out) == pytest.approx(SECRET_SECONDS, abs=0.5)


@pytest.mark.parametrize("disguise", DISGUISES)
@pytest.mark.parametrize("kind", MANIFESTS)
def test_manifests_are_not_media_files_however_disguised(hostile_dir, tmp_path, kind, disguise):
    path = make_manifest(kind, hostile_dir, disguise)
    with pytest.raises(PermanentError, match=NOT_MEDIA):
        ffmpeg.FFmpeg(FFMPEG).probe(str(path))
    # and should an inspection ever be fooled, the conversion refuses on its own
    dst = tmp_path / "out.mp3"
    with pytest.raises(PermanentError, match=NOT_MEDIA):
        _convert(path, dst)
    assert not dst.exists() or dst.stat().st_size == 0
    assert ffmpeg.FFmpeg(FFMPEG).audio_duration(str(path)) == 0


_TONE = ["-f", "lavfi", "-i", "sine=frequency=440:duration=3"]
_PICTURE = ["-f", "lavfi", "-i", "testsrc=size=64x48:rate=25:duration=3"]
# every container the upload check lets through: name -> ffmpeg arguments
ACCEPTED = {
    "clip.mp4": [*_PICTURE, *_TONE, "-c:v", "libx264", "-preset", "ultrafast"],
    "clip.mov": [*_PICTURE, *_TONE, "-c:v", "libx264", "-preset", "ultrafast"],
    "sound.m4a": _TONE,
    "clip.3gp": [*_TONE, "-ar", "8000", "-c:a", "libopencore_amrnb", "-b:a", "12.2k"],
    "clip.mkv": [*_PICTURE, *_TONE],
    "clip.webm": [*_PICTURE, *_TONE, "-c:v", "libvpx", "-deadline", "realtime"],
    "sound.mp3": _TONE,
    "bare.mp3": [*_TONE, "-id3v2_version", "0", "-write_xing", "0"],
    "sound.aac": _TONE,
    "sound.flac": _TONE,
    "sound.ogg": _TONE,
    "sound.opus": _TONE,
    "sound.wav": _TONE,
    "clip.avi": [*_PICTURE, *_TONE],
    "clip.wmv": [*_PICTURE, *_TONE],
    "clip.flv": [*_PICTURE, *_TONE],
    "clip.mpg": [*_PICTURE, *_TONE],
    "clip.ts": [*_PICTURE, *_TONE],
    "sound.amr": [*_TONE, "-ar", "8000", "-c:a", "libopencore_amrnb", "-b:a", "12.2k"],
    "clip.rm": [*_PICTURE, *_TONE, "-c:a", "ac3"],
}


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_every_container_the_upload_accepts_converts(tmp_path, name):
    src, dst = tmp_path / name, tmp_path / "out.mp3"
    subprocess.run([FFMPEG, "-y", "-loglevel", "error", *ACCEPTED[name], "-t", "3", str(src)],
                   check=True, capture_output=True, timeout=120)
    assert media_type(src.read_bytes()[:PROBE_BYTES]) is not None
    info = ffmpeg.FFmpeg(FFMPEG).probe(str(src))
    duration = _convert(src, dst, info)
    ffmpeg.check_output(dst.stat().st_size, duration, info, plan.plain(info),
                        lambda: ffmpeg.FFmpeg(FFMPEG).audio_duration(str(src)))
    assert ffprobe_codec(dst) == "mp3"


# A tag value that imitates the lines of ffmpeg's report on its input.
FORGED = ("x\n  Duration: 99:00:00.00, start: 0.000000, bitrate: 1 kb/s\n"
          "  Stream #0:5: Audio: mp3, 44100 Hz, 5.1, fltp\nStream #0:5: Audio: mp3 Duration: 99")


@pytest.mark.parametrize("name, codec", [("tagged.flac", "flac"), ("tagged.mp4", "aac"),
                                         ("tagged.mp3", "mp3"), ("tagged.ogg", "vorbis"),
                                         ("tagged.mkv", "vorbis")])
def test_a_title_imitating_ffmpeg_changes_nothing(tmp_path, name, codec):
    src, dst = tmp_path / name, tmp_path / "out.mp3"
    subprocess.run([FFMPEG, "-y", "-loglevel", "error", *_TONE, "-ac", "2",
                    "-metadata", f"title={FORGED}", "-metadata", f"comment={FORGED}", str(src)],
                   check=True, capture_output=True, timeout=120)
    info = ffmpeg.FFmpeg(FFMPEG).probe(str(src))
    assert info.duration == pytest.approx(3.0, abs=0.1)
    assert (info.audio_codec, info.channels) == (codec, "stereo")
    assert _convert(src, dst, info) == pytest.approx(3.0, abs=0.2)
    assert ffprobe_codec(dst) == "mp3"


@pytest.mark.parametrize("name, option", [
    ("key.flac", f"{FORGED}=value"),  # FLAC and ID3 keep a tag's name as it is
    ("key.mp3", f"{FORGED}=value"),
    ("language.mkv", "language=eng\n  Duration: 99:00:00.00, x"),
])
def test_tag_names_imitating_ffmpeg_are_refused(tmp_path, name, option):
    """A tag name or stream language is printed as it is: a second report line is refused."""
    src = tmp_path / name
    scope = "-metadata:s:a:0" if option.startswith("language") else "-metadata"
    subprocess.run([FFMPEG, "-y", "-loglevel", "error", *_TONE, scope, option, str(src)],
                   check=True, capture_output=True, timeout=120)
    with pytest.raises(PermanentError, match="tags are malformed"):
        ffmpeg.FFmpeg(FFMPEG).probe(str(src))


# A summary like the one ebur128 prints as the measuring pass ends, as ffmpeg would print it,
# claiming a level (+5 LUFS, +9 dBTP) the audio is far from.
FAKE_SUMMARY = ("[Parsed_ebur128_0 @ 0x55d0c0ffee00] Summary:\n\n  Integrated loudness:\n"
                "    I:           5.0 LUFS\n    Threshold:  -5.0 LUFS\n\n  Loudness range:\n"
                "    LRA:         1.0 LU\n    Threshold: -15.0 LUFS\n    LRA low:     4.0 LUFS\n"
                "    LRA high:    5.0 LUFS\n\n  True peak:\n    Peak:        9.0 dBFS")
_QUIET_TONE = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=3",
               "-af", "volume=0.05"]
# A tag's value is printed behind a margin, its name as it is: a name can start a line, and
# imitate the "Stream mapping:" line that ends ffmpeg's report on the input too.
FORGERIES = {
    "values.mka": ["-metadata", f"title=x\n{FAKE_SUMMARY}", "-metadata:s:a:0",
                   f"comment=\n{FAKE_SUMMARY}\n"],
    "name.flac": ["-metadata", f"x\nStream mapping:\n{FAKE_SUMMARY}\ny=v"],
    "name.mp3": ["-metadata", f"x\nStream mapping:\n{FAKE_SUMMARY}\ny=v"],
}


@pytest.mark.parametrize("name", FORGERIES)
def test_tags_cannot_forge_the_loudness_measurement(tmp_path, name):
    """Tags imitating ffmpeg's loudness summary (in a value, or a name that also imitates the
    end of the report on the input): the audio measures exactly as it does without them."""
    run = ffmpeg.FFmpeg(FFMPEG, timeout=60)
    measured = {}
    for kind, tags in (("clean", []), ("forged", FORGERIES[name])):
        src = tmp_path / f"{kind}-{name}"
        codec = ["-c:a", "flac"] if name.endswith(".mka") else []  # else the format's own
        subprocess.run([FFMPEG, "-y", "-loglevel", "error", *_QUIET_TONE, *tags, *codec,
                        str(src)],
                       check=True, capture_output=True, timeout=60)
        info = run.probe(str(src))
        measured[kind] = run.measure_loudness(str(src), info, plan.plain(info), lambda _: None)
    assert -50 < measured["forged"]["input_i"] < -30 and measured["forged"]["input_tp"] < -20
    assert measured["forged"] == measured["clean"]


def test_a_forged_summary_before_the_end_of_the_input_report_is_never_read():
    """Should ffmpeg print no summary of its own, a forged one (a tag's name, printed in the
    report on the input) is not taken for it, even as the last one in the tail."""
    forged_dump = ("Input #0, flac, from 'file:x.flac':\n  Metadata:\n    x\n"
                   f"Stream mapping:\n{FAKE_SUMMARY}\ny: v\n  Duration: 00:00:03.00\n"
                   "Stream mapping:\n  Stream #0:0 -> #0:0 (flac (native) -> pcm_s16le)\n")
    assert ffmpeg._report(forged_dump + "size=N/A time=N/A\n", ffmpeg._EBUR128) is None
    real = FAKE_SUMMARY.replace("  5.0 LUFS\n    Threshold:  -5.0",
                                "-31.5 LUFS\n    Threshold: -41.5")
    found = ffmpeg._report(f"{forged_dump}{real}\n[out#0/null @ 0x1] video:0KiB\n",
                           ffmpeg._EBUR128)
    assert found is not None and (found["input_i"], found["input_thresh"]) == ("-31.5", "-41.5")
