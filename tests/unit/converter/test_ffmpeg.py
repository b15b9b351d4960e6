"""ffmpeg wrapper on real media: probing, the command line, conversion and output checks."""

import json
import shutil
import subprocess
import threading

import pytest

from common.errors import PermanentError, RetryableError
from common.options import Options
from converter import cover, ffmpeg, plan
from converter.limits import MIB, Limits
from tests.conftest import ffprobe_codec, ffprobe_duration
from tools.media import SECONDS, ffmpeg_exe

FFMPEG = ffmpeg_exe()


def _channels(path) -> int:
    out = subprocess.run([shutil.which("ffprobe") or "ffprobe", "-v", "error", "-of", "json",
                          "-select_streams", "a:0", "-show_entries", "stream=channels",
                          str(path)], capture_output=True, text=True, timeout=60, check=True)
    return json.loads(out.stdout)["streams"][0]["channels"]


@pytest.mark.parametrize("kind, codec, channels, multichannel", [
    ("mp4_aac51", "aac", "5.1", True),
    ("mkv_mp3", "mp3", "stereo", False),
    ("webm_opus", "opus", "mono", False),
    ("mov", "aac", "stereo", False),
])
def test_probe_reads_codec_channels_and_duration(media, kind, codec, channels, multichannel):
    info = ffmpeg.probe(FFMPEG, str(media(kind)))
    assert info.audio_codec == codec
    assert info.channels == channels
    assert info.multichannel is multichannel
    assert info.duration == pytest.approx(SECONDS, abs=0.1)


def test_probe_video_without_audio(media):
    info = ffmpeg.probe(FFMPEG, str(media("no_audio")))
    assert info.audio_codec is None and info.channels is None
    assert info.duration == pytest.approx(SECONDS, abs=0.1)


def test_probe_rejects_text_and_truncated_files(media, tmp_path):
    with pytest.raises(PermanentError, match="not a media file: ffmpeg cannot read this file"):
        ffmpeg.probe(FFMPEG, str(media("text")))
    truncated = tmp_path / "cut.mp4"
    truncated.write_bytes(media("mov").read_bytes()[:2000])  # the index (moov) is lost
    with pytest.raises(PermanentError, match="not a media file: ffmpeg cannot read this file"):
        ffmpeg.probe(FFMPEG, str(truncated))


def test_command_copies_mp3_audio_without_reencoding():
    info = ffmpeg.MediaInfo(10.0, "mp3", "stereo")
    cmd = ffmpeg.command("ffmpeg", "in.mkv", "out.mp3", info, plan.plain(info))
    assert cmd[cmd.index("-c:a") + 1] == "copy"
    assert "-ac" not in cmd and "libmp3lame" not in cmd
    assert cmd[cmd.index("-map") + 1] == "0:a:0" and "-vn" in cmd
    assert cmd[-1] == "file:out.mp3" and cmd[cmd.index("-i") + 1] == "file:in.mkv"


@pytest.mark.parametrize("channels, downmix", [("5.1", True), ("5.1(side)", True),
                                               ("7.1", True), ("quad", True),
                                               ("stereo", False), ("mono", False)])
def test_command_downmixes_only_more_than_two_channels(channels, downmix):
    info = ffmpeg.MediaInfo(1.0, "aac", channels)
    cmd = ffmpeg.command("ffmpeg", "in", "out", info, plan.plain(info, 4))
    assert ("-ac" in cmd) is downmix
    if downmix:
        assert cmd[cmd.index("-ac") + 1] == "2"
    assert cmd[cmd.index("-c:a") + 1] == "libmp3lame"
    assert cmd[cmd.index("-q:a") + 1] == "4"


def _convert(src, dst, **kwargs):
    info = ffmpeg.probe(FFMPEG, str(src))
    progress: list[float] = []
    options = {"timeout": 60.0, "abandon": threading.Event(), **kwargs}
    duration = ffmpeg.convert(FFMPEG, str(src), str(dst), info, plan.plain(info),
                              options["timeout"], progress.append, options["abandon"])
    return info, duration, progress


def _audio_length(src):
    return lambda: ffmpeg.audio_duration(FFMPEG, str(src))


def test_surround_aac_becomes_stereo_mp3_of_the_same_length(media, tmp_path):
    src, dst = media("mp4_aac51"), tmp_path / "out.mp3"
    info, duration, progress = _convert(src, dst)
    ffmpeg.check_output(dst.stat().st_size, duration, info, plan.plain(info),
                        _audio_length(src))
    assert ffprobe_codec(dst) == "mp3"
    assert ffprobe_codec(dst, "v") is None
    assert _channels(dst) == 2
    assert abs(ffprobe_duration(dst) - ffprobe_duration(src)) <= 0.2
    assert duration == pytest.approx(SECONDS, abs=0.2)
    assert all(0 <= p <= 99 for p in progress)


@pytest.mark.parametrize("kind", ["mkv_mp3", "webm_opus", "mov"])
def test_other_kinds_convert_to_mp3(media, tmp_path, kind):
    src, dst = media(kind), tmp_path / "out.mp3"
    info, duration, _ = _convert(src, dst)
    ffmpeg.check_output(dst.stat().st_size, duration, info, plan.plain(info),
                        _audio_length(src))
    assert ffprobe_codec(dst) == "mp3"
    assert abs(ffprobe_duration(dst) - ffprobe_duration(src)) <= 0.2


def test_video_without_audio_is_permanent(media, tmp_path):
    with pytest.raises(PermanentError, match="no audio track"):
        _convert(media("no_audio"), tmp_path / "out.mp3")
    assert not (tmp_path / "out.mp3").exists()


def test_corrupt_audio_data_is_permanent(media, tmp_path):
    src = tmp_path / "corrupt.mkv"
    data = media("mkv_mp3").read_bytes()
    src.write_bytes(data[:1500])  # header intact, the frames are gone
    with pytest.raises(PermanentError):
        info, duration, _ = _convert(src, tmp_path / "out.mp3")
        size = (tmp_path / "out.mp3").stat().st_size if (tmp_path / "out.mp3").exists() else 0
        ffmpeg.check_output(size, duration, info, plan.plain(info), _audio_length(src))


def test_running_out_of_time_is_permanent_and_an_interruption_retryable(media, tmp_path):
    with pytest.raises(PermanentError, match="the conversion took longer than the 0 seconds "
                                             "allowed"):
        _convert(media("mp4_aac51"), tmp_path / "a.mp3", timeout=0.0)
    stop = threading.Event()
    stop.set()
    with pytest.raises(RetryableError, match="interrupted"):
        _convert(media("mp4_aac51"), tmp_path / "b.mp3", abandon=stop)


@pytest.mark.parametrize("size, duration, source", [(0, 3.0, 3.0), (1000, 0.0, 3.0),
                                                    (1000, 2.7, 3.0), (1000, 3.3, 3.0)])
def test_check_output_rejects_empty_or_wrong_length(size, duration, source):
    with pytest.raises(PermanentError):
        info = ffmpeg.MediaInfo(source, "aac", "stereo")
        ffmpeg.check_output(size, duration, info, plan.plain(info), lambda: source)


@pytest.mark.parametrize("duration, source", [(3.0, 3.0), (3.15, 3.0), (2.85, 3.0),
                                              (3.0, None)])
def test_check_output_accepts_close_lengths(duration, source):
    info = ffmpeg.MediaInfo(source, "aac", "stereo")
    ffmpeg.check_output(1000, duration, info, plan.plain(info), lambda: source)


def test_video_whose_sound_stops_before_the_picture_still_converts(tmp_path):
    """A valid file: 3 s of picture, 2 s of sound. The MP3 is the 2 s of sound."""
    src, dst = tmp_path / "short_sound.mp4", tmp_path / "out.mp3"
    subprocess.run([FFMPEG, "-y", "-loglevel", "error",
                    "-f", "lavfi", "-i", "testsrc=size=160x120:rate=15:duration=3",
                    "-f", "lavfi", "-i", "sine=frequency=440:duration=2",
                    "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
                    "-c:a", "aac", str(src)], check=True, capture_output=True, timeout=120)
    info, duration, _ = _convert(src, dst)
    ffmpeg.check_output(dst.stat().st_size, duration, info, plan.plain(info),
                        _audio_length(src))
    assert ffprobe_duration(dst) == pytest.approx(2.0, abs=0.2)


def test_an_mp3_shorter_than_the_source_audio_is_rejected(media):
    info = ffmpeg.probe(FFMPEG, str(media("mov")))
    with pytest.raises(PermanentError, match="source audio is 3.0"):
        ffmpeg.check_output(1000, 2.0, info, plan.plain(info), _audio_length(media("mov")))


@pytest.fixture(scope="module")
def short_picture(tmp_path_factory):
    """12 s of sound under a picture that stops after 2 s (a title card, a still image)."""
    path = tmp_path_factory.mktemp("short-picture") / "card.mp4"
    subprocess.run([FFMPEG, "-y", "-loglevel", "error", "-f", "lavfi", "-i",
                    "testsrc=size=320x240:rate=10:duration=2", "-f", "lavfi", "-i",
                    "sine=frequency=300:duration=12", "-c:v", "libx264", "-preset", "ultrafast",
                    "-c:a", "aac", str(path)], check=True, capture_output=True, timeout=60)
    return path


@pytest.mark.parametrize("options", [
    Options(),  # a third in (4 s) has no frame
    Options(start=5.0),  # the kept part has no picture at all
])
def test_a_picture_shorter_than_the_sound_gives_its_first_frame_as_cover(short_picture,
                                                                        tmp_path, options):
    info = ffmpeg.probe(FFMPEG, str(short_picture))
    recipe = plan.make(info, options, 2)
    assert recipe.cover_at > 2.0
    picture = ffmpeg.extract_cover(FFMPEG, str(short_picture), recipe.cover_at,
                                   str(tmp_path / "cover.jpg"), threading.Event())
    assert cover.dimensions(picture) == (320, 240)


def test_a_picture_too_large_to_decode_is_no_cover_and_no_failure(tmp_path):
    """4000x4000 under a 256 MiB address space: the frame cannot be decoded."""
    src = tmp_path / "huge.mkv"
    subprocess.run([FFMPEG, "-y", "-loglevel", "error", "-f", "lavfi", "-i",
                    "color=size=4000x4000:rate=1:duration=1", "-c:v", "mjpeg", str(src)],
                   check=True, capture_output=True, timeout=60)
    picture = ffmpeg.extract_cover(FFMPEG, str(src), 0.0, str(tmp_path / "cover.jpg"),
                                   threading.Event(), Limits(memory_bytes=256 * MIB))
    assert picture is None
