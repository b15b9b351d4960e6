"""The generated test media are what their kind says, and are made once per session."""

import pytest

from tools.media import KINDS, ffmpeg_exe, ffprobe_codec, ffprobe_duration

EXPECTED = {
    "mp4_aac51": ("h264", "aac", ".mp4"),
    "mkv_mp3": ("h264", "mp3", ".mkv"),
    "webm_opus": ("vp8", "opus", ".webm"),
    "mov": ("h264", "aac", ".mov"),
    "no_audio": ("h264", None, ".mp4"),
}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_kind_has_the_promised_streams_and_length(media, kind):
    video, audio, suffix = EXPECTED[kind]
    path = media(kind)
    assert path.suffix == suffix
    assert ffprobe_codec(path, "v") == video
    assert ffprobe_codec(path, "a") == audio
    assert ffprobe_duration(path) == pytest.approx(3.0, abs=0.2)


def test_surround_source_has_six_channels(media):
    from converter import ffmpeg

    info = ffmpeg.FFmpeg(ffmpeg_exe()).probe(str(media("mp4_aac51")))
    assert (info.audio_codec, info.channels, info.multichannel) == ("aac", "5.1", True)


def test_text_file_named_like_a_video_is_not_media(media):
    path = media("text")
    assert path.suffix == ".mp4"
    assert ffprobe_duration(path) is None
    assert ffprobe_codec(path) is None


def test_media_are_cached(media):
    first = media("mkv_mp3")
    mtime = first.stat().st_mtime_ns
    assert media("mkv_mp3") == first
    assert first.stat().st_mtime_ns == mtime


def test_unknown_kind_is_refused(media):
    with pytest.raises(ValueError, match="unknown media kind"):
        media("avi_pcm")
