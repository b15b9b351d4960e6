"""A job's options held against the probed source: trim checks, copy or encode, the command."""

import pytest

from common.errors import PermanentError
from common.options import Options
from converter import ffmpeg, plan

AAC_VIDEO = ffmpeg.MediaInfo(600.0, "aac", "stereo", 48000, video=True)
MP3_AUDIO = ffmpeg.MediaInfo(300.0, "mp3", "stereo", 44100)


def _cmd(info, options, **outputs):
    recipe = plan.make(info, options, 2)
    return recipe, ffmpeg.command("ffmpeg", "src", "out.mp3", info, recipe, **outputs)


def _arg(cmd, flag, occurrence=0):
    positions = [i for i, part in enumerate(cmd) if part == flag]
    return cmd[positions[occurrence] + 1]


def test_an_mp3_source_is_copied_unless_quality_or_loudness_asks_for_new_frames():
    assert plan.make(MP3_AUDIO, Options(), 2).copy
    assert plan.make(MP3_AUDIO, Options(start=5, end=10, title="t", cover="none"), 2).copy
    assert not plan.make(MP3_AUDIO, Options(quality="v2"), 2).copy
    assert not plan.make(MP3_AUDIO, Options(normalize=True), 2).copy
    assert not plan.make(AAC_VIDEO, Options(), 2).copy


@pytest.mark.parametrize("quality, args", [("v0", ["-q:a", "0"]), ("v5", ["-q:a", "5"]),
                                           ("128", ["-b:a", "128k"]), ("320", ["-b:a", "320k"]),
                                           (None, ["-q:a", "2"])])
def test_each_quality_reaches_the_encoder(quality, args):
    _, cmd = _cmd(AAC_VIDEO, Options(quality=quality))
    flag = args[0]
    assert [flag, _arg(cmd, flag)] == args


def test_the_trim_is_an_input_seek_and_length_of_the_audio_input_only():
    recipe, cmd = _cmd(AAC_VIDEO, Options(start=90.25, end=150.0))
    first_input = cmd.index("-i")
    assert cmd[first_input - 4:first_input] == ["-ss", "90.250", "-t", "59.750"]
    assert recipe.expected(600.0) == pytest.approx(59.75)
    assert recipe.expected(100.0) == pytest.approx(9.75)  # the audio ends before the trim


def test_the_cover_is_taken_a_third_into_the_kept_part():
    assert plan.make(AAC_VIDEO, Options(start=60, end=360), 2).cover_at == pytest.approx(160.0)
    assert plan.make(AAC_VIDEO, Options(), 2).cover_at == pytest.approx(200.0)


@pytest.mark.parametrize("info, options", [
    (AAC_VIDEO, Options(cover="none")),
    (MP3_AUDIO, Options()),  # audio only: no picture to take
])
def test_no_cover_without_a_video_or_when_refused(info, options):
    assert plan.make(info, options, 2).cover_at is None


def test_the_mp3_itself_carries_no_tag_from_ffmpeg_and_nothing_of_the_source():
    _, cmd = _cmd(AAC_VIDEO, Options(title="x"), chapters="ch.txt")
    audio = cmd[:cmd.index("file:out.mp3")]
    assert _arg(audio, "-id3v2_version") == "0" and _arg(audio, "-map_metadata") == "-1"
    assert _arg(audio, "-map_chapters") == "-1"
    assert cmd[-3:] == ["-f", "ffmetadata", "file:ch.txt"]


def test_normalizing_applies_the_measured_values_at_the_source_rate():
    measured = {"input_i": -27.31, "input_tp": -9.5, "input_lra": 4.2, "input_thresh": -37.6,
                "target_offset": 0.4}
    _, cmd = _cmd(AAC_VIDEO, Options(normalize=True), loudness=measured)
    assert _arg(cmd, "-af") == ("loudnorm=I=-16:TP=-1.5:LRA=11:measured_I=-27.31"
                                ":measured_TP=-9.50:measured_LRA=4.20:measured_thresh=-37.60"
                                ":offset=0.40:linear=true:print_format=none")
    assert _arg(cmd, "-ar") == "48000"
    odd_rate = ffmpeg.MediaInfo(10.0, "pcm_s24le", "5.1", 96000)
    _, cmd = _cmd(odd_rate, Options(normalize=True), loudness=measured)
    assert _arg(cmd, "-ar") == "48000" and _arg(cmd, "-af").startswith(
        "aformat=channel_layouts=stereo,loudnorm=")


@pytest.mark.parametrize("options, message", [
    (Options(start=600.0), "the trim start 0:10:00 is past the end of the media (0:10:00)"),
    (Options(start=700.0, end=800.0), "the trim start 0:11:40 is past the end of the media"),
    (Options(end=601.0), "the trim end 0:10:01 is past the end of the media (0:10:00)"),
    (Options(start=599.95), "the trim start 0:09:59.950 leaves less than 0.1 s of the media"),
])
def test_a_trim_outside_the_media_fails_the_job_with_the_reason(options, message):
    with pytest.raises(PermanentError) as failed:
        plan.make(AAC_VIDEO, options, 2)
    assert str(failed.value).startswith(message) and failed.value.kind == "options"


def test_a_trim_end_a_rounding_past_the_duration_is_accepted():
    assert plan.make(AAC_VIDEO, Options(end=600.1), 2).span == pytest.approx(600.1)


def test_without_a_known_duration_the_trim_is_checked_on_the_output():
    unknown = ffmpeg.MediaInfo(None, "aac", "stereo")
    recipe = plan.make(unknown, Options(start=50.0, end=60.0), 2)
    with pytest.raises(PermanentError, match="the trim start is past the end of the audio"):
        ffmpeg.check_output(0, 0.0, unknown, recipe, lambda: 20.0)
    with pytest.raises(PermanentError, match="the trim end is past the end of the audio"):
        ffmpeg.check_output(1000, 5.0, unknown, plan.make(unknown, Options(end=60.0), 2),
                            lambda: 5.0)
    ffmpeg.check_output(1000, 10.0, unknown, recipe, lambda: 100.0)
