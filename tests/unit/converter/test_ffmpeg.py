"""ffmpeg wrapper on real media: probing, the command line, conversion and output checks."""

import json
import shutil
import subprocess
import threading
import time

import pytest

from common.errors import PermanentError, RetryableError
from common.options import Options
from converter import cover, ffmpeg, plan
from converter.limits import MIB, Limits
from tests.conftest import ffprobe_codec, ffprobe_duration
from tools.media import (
    FFMPEG_INTERNALS,
    SECONDS,
    ffmpeg_exe,
    make_lying_mkv,
    make_lying_mp3,
    make_many_channels,
)

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
    info = ffmpeg.FFmpeg(FFMPEG).probe(str(media(kind)))
    assert info.audio_codec == codec
    assert info.channels == channels
    assert info.multichannel is multichannel
    assert info.duration == pytest.approx(SECONDS, abs=0.1)


def test_probe_video_without_audio(media):
    info = ffmpeg.FFmpeg(FFMPEG).probe(str(media("no_audio")))
    assert info.audio_codec is None and info.channels is None
    assert info.duration == pytest.approx(SECONDS, abs=0.1)


def test_probe_rejects_text_and_truncated_files(media, tmp_path):
    with pytest.raises(PermanentError, match="not a media file: ffmpeg cannot read this file"):
        ffmpeg.FFmpeg(FFMPEG).probe(str(media("text")))
    truncated = tmp_path / "cut.mp4"
    truncated.write_bytes(media("mov").read_bytes()[:2000])  # the index (moov) is lost
    with pytest.raises(PermanentError, match="not a media file: ffmpeg cannot read this file"):
        ffmpeg.FFmpeg(FFMPEG).probe(str(truncated))


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
    info = ffmpeg.FFmpeg(FFMPEG).probe(str(src))
    progress: list[float] = []
    options = {"timeout": 60.0, "abandon": threading.Event(), **kwargs}
    run = ffmpeg.FFmpeg(FFMPEG, timeout=options["timeout"], abandon=options["abandon"])
    duration = run.convert(str(src), str(dst), info, plan.plain(info), progress.append)
    return info, duration, progress


def _audio_length(src):
    return lambda: ffmpeg.FFmpeg(FFMPEG).audio_duration(str(src))


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
    info = ffmpeg.FFmpeg(FFMPEG).probe(str(media("mov")))
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
    info = ffmpeg.FFmpeg(FFMPEG).probe(str(short_picture))
    recipe = plan.make(info, options, 2)
    assert recipe.cover_at > 2.0
    picture = ffmpeg.FFmpeg(FFMPEG).extract_cover(str(short_picture), recipe.cover_at,
                                                  str(tmp_path / "cover.jpg"))
    assert cover.dimensions(picture) == (320, 240)


def test_a_picture_too_large_to_decode_is_no_cover_and_no_failure(tmp_path):
    """4000x4000 under a 256 MiB address space: the frame cannot be decoded."""
    src = tmp_path / "huge.mkv"
    subprocess.run([FFMPEG, "-y", "-loglevel", "error", "-f", "lavfi", "-i",
                    "color=size=4000x4000:rate=1:duration=1", "-c:v", "mjpeg", str(src)],
                   check=True, capture_output=True, timeout=60)
    picture = ffmpeg.FFmpeg(FFMPEG, Limits(memory_bytes=256 * MIB)).extract_cover(
        str(src), 0.0, str(tmp_path / "cover.jpg"))
    assert picture is None


# -- failures a person can act on ---------------------------------------------------------------
_NOTHING_WRITTEN = ("[out#0/mp3 @ 0x55f7aba97ac0] Nothing was written into output file, "
                    "because at least one of its streams received no packets.\n")
_REMATRIX_TAIL = (
    "[auto_aresample_0 @ 0x7f18f4007700] [SWR @ 0x7f18f4007880] Rematrix is needed between "
    "9 channels and stereo but there is not enough information to do it\n"
    "[auto_aresample_0 @ 0x7f18f4007700] Failed to configure output pad on auto_aresample_0\n"
    "[af#0:0 @ 0x55f1ab9ec240] Error reinitializing filters!\n"
    "[af#0:0 @ 0x55f1ab9ec240] Task finished with error code: -22 (Invalid argument)\n"
    "[aost#0:0/libmp3lame @ 0x55f1ab9eb080] [enc:libmp3lame @ 0x55f1ab9eb900] Could not open "
    "encoder before EOF\n" + _NOTHING_WRITTEN)
_LAYOUT_TAIL = (
    "[auto_aresample_0 @ 0x7f59040075c0] [SWR @ 0x7f5904007740] Input channel layout '13 "
    "channels (FL+FR+FC+LFE+BL+BR+FLC+FRC+BC+SL+SR+TC+TFL)' is not supported\n"
    "[af#0:0 @ 0x55f0eab20480] Error reinitializing filters!\n" + _NOTHING_WRITTEN)
_INVALID_TAIL = ("[in#0 @ 0x5581c0a2b900] Error opening input: Invalid data found when "
                 "processing input\nError opening input file file:/tmp/converter-x1/source.\n"
                 "Error opening input files: Invalid data found when processing input\n")
_UNKNOWN_TAIL = ("Assertion best_input >= 0 failed at fftools/ffmpeg_mux.c:412\n"
                 "[mp3 @ 0x55f7aba97ac0] pointer 0x55f7aba97ac0 freed twice\n" + _NOTHING_WRITTEN)


@pytest.mark.parametrize("tail, said", [
    (_REMATRIX_TAIL, "its 9 channels have no speaker layout (such as 5.1 or 7.1) that says how "
                     "to mix them down to stereo; mix it down to stereo before uploading"),
    (_LAYOUT_TAIL, "its 13 channels are in a speaker layout that cannot be mixed down to "
                   "stereo; mix it down to stereo before uploading"),
    (_INVALID_TAIL, "the file is damaged, or its data is in no format ffmpeg knows"),
    (_UNKNOWN_TAIL, ffmpeg.GENERIC_FAILURE),
    (_NOTHING_WRITTEN, ffmpeg.GENERIC_FAILURE),
    ("", ffmpeg.GENERIC_FAILURE),
])
def test_ffmpeg_failures_are_told_in_a_sentence_never_in_ffmpegs_words(tail, said):
    assert FFMPEG_INTERNALS.search(tail) or not tail  # the sample is ffmpeg's own output
    assert ffmpeg.explain(tail) == said
    assert not FFMPEG_INTERNALS.search(said) and "/tmp/" not in said


def test_more_channels_than_supported_are_refused_from_the_probe(tmp_path):
    """A real 64-channel WAV: ffmpeg cannot mix it down to stereo (it used to fail with
    "[out#0/mp3 @ 0x55f7…] Nothing was written into output file…")."""
    src = make_many_channels(tmp_path, 64)
    info = ffmpeg.FFmpeg(FFMPEG).probe(str(src))
    assert info.channels == "64 channels" and info.channel_count == 64
    said = "the audio has 64 channels; at most 24 are supported: mix it down to stereo before "
    with pytest.raises(PermanentError, match=f"^{said}uploading$") as refused:
        ffmpeg.check_media(info, Limits())
    assert refused.value.kind == "not_media"
    with pytest.raises(PermanentError, match=f"^{said}"):
        _convert(src, tmp_path / "out.mp3")
    assert not (tmp_path / "out.mp3").exists()  # refused before ffmpeg ran


def test_channels_ffmpeg_cannot_mix_down_fail_with_the_reason_and_not_its_words(tmp_path,
                                                                               caplog):
    """9 channels with no speaker layout pass the probe; ffmpeg's failure is explained."""
    src = make_many_channels(tmp_path, 9, seconds=0.5)
    caplog.set_level("WARNING", logger="converter.ffmpeg")
    with pytest.raises(PermanentError) as failed:
        _convert(src, tmp_path / "out.mp3")
    assert str(failed.value) == ("the audio could not be converted: its 9 channels have no "
                                 "speaker layout (such as 5.1 or 7.1) that says how to mix "
                                 "them down to stereo; mix it down to stereo before uploading")
    (logged,) = [r for r in caplog.records if r.getMessage() == "ffmpeg failed"]
    assert "Rematrix is needed" in logged.detail  # ffmpeg's own words: for the log only


@pytest.mark.parametrize("kind", ["text", "cut"])
def test_a_file_ffmpeg_cannot_open_shows_no_internals(media, tmp_path, kind):
    src = media("text")
    if kind == "cut":
        src = tmp_path / "cut.mp4"
        src.write_bytes(media("mov").read_bytes()[:2000])
    with pytest.raises(PermanentError) as failed:
        ffmpeg.FFmpeg(FFMPEG).probe(str(src))
    assert str(failed.value) == ("not a media file: ffmpeg cannot read this file (the file is "
                                 "damaged, or its data is in no format ffmpeg knows)")


# -- progress when the header lies about the length ---------------------------------------------
def test_progress_follows_the_bytes_when_the_header_claims_half_the_length(media_dir):
    """An MKV whose Duration says 300 s of its 600: by time alone progress reached 99 % half
    way and stuck there; it now keeps moving and claims the end only at the end."""
    src = make_lying_mkv(media_dir, 0.5)
    info = ffmpeg.FFmpeg(FFMPEG).probe(str(src))
    assert info.duration == pytest.approx(300.0) and info.container == "matroska"
    seen: list[tuple[float, float]] = []
    started = time.monotonic()
    duration = ffmpeg.FFmpeg(FFMPEG, timeout=120.0).convert(
        str(src), str(media_dir / "lying-half.mp3"), info, plan.plain(info),
        lambda p: seen.append((time.monotonic() - started, p)))
    ended = time.monotonic() - started
    assert duration == pytest.approx(600.0, abs=0.2)
    values = [value for _, value in seen]
    assert values == sorted(values) and values[-1] == 99.0, seen
    first, near_end = seen[0][0], next(at for at, value in seen if value >= 98.5)
    assert near_end - first >= 0.75 * (ended - first), seen  # not 99 % for half the run
    assert len([value for value in values if value < 98.5]) >= 3, seen


def test_an_mp3_whose_header_claims_half_its_length_is_copied_whole(media_dir):
    src = make_lying_mp3(media_dir, 0.5)
    info = ffmpeg.FFmpeg(FFMPEG).probe(str(src))
    assert info.duration == pytest.approx(30.0, abs=0.1) and info.container == "mp3"
    recipe = plan.plain(info)
    assert recipe.copy
    dst = media_dir / "lying-half-copy.mp3"
    seen: list[float] = []
    duration = ffmpeg.FFmpeg(FFMPEG, timeout=60.0).convert(str(src), str(dst), info, recipe,
                                                           seen.append)
    assert duration == pytest.approx(60.0, abs=0.2)
    assert seen == sorted(seen) and seen[-1] == 99.0 and all(0 <= p <= 99 for p in seen)
    ffmpeg.check_output(dst.stat().st_size, duration, info, recipe, _audio_length(src))
