"""Conversion limits: length, processor time and MP3 size, told in words a person reads."""

import threading

import pytest

from common.errors import PermanentError
from common.options import Options
from common.settings import ConfigError
from common.units import size
from converter import ffmpeg, plan
from converter.config import ConverterConfig
from converter.limits import MIB, Limits, span, span_adjective, too_long
from tools.media import ffmpeg_exe, make_noise, make_ten_hour_flac

FFMPEG = ffmpeg_exe()


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    return tmp_path_factory.mktemp("limits")


def _convert(src, dst, limits: Limits, info=None):
    run = ffmpeg.FFmpeg(FFMPEG, limits, 600, threading.Event())
    info = info or run.probe(str(src))
    return run.convert(str(src), str(dst), info, plan.plain(info), lambda _: None)


@pytest.mark.parametrize("seconds, adjective, noun", [
    (10800, "3-hour", "3 hours"), (5400, "90-minute", "90 minutes"), (3600, "1-hour", "1 hour"),
    (45, "45-second", "45 seconds"), (1, "1-second", "1 second"),
    (2.5, "2.5-second", "2.5 seconds"),
])
def test_limits_are_told_in_words(seconds, adjective, noun):
    assert span_adjective(seconds) == adjective
    assert span(seconds) == noun


@pytest.mark.parametrize("n_bytes, words", [(512 * MIB, "512 MiB"), (1536 * MIB, "1.5 GiB"),
                                            (1000 * MIB, "1000 MiB"), (2048, "2 KiB"),
                                            (100, "100 bytes")])
def test_sizes_are_told_in_words(n_bytes, words):
    assert size(n_bytes) == words


@pytest.mark.parametrize("limit, words", [(10800, "3-hour"), (5400, "90-minute"),
                                          (45, "45-second")])
def test_ten_hours_of_silence_are_refused_before_converting(samples, tmp_path, limit, words):
    src, dst = make_ten_hour_flac(samples), tmp_path / "out.mp3"
    info = ffmpeg.FFmpeg(FFMPEG).probe(str(src))
    assert info.duration == 36000
    with pytest.raises(PermanentError) as refused:
        _convert(src, dst, Limits(media_seconds=limit), info)
    assert str(refused.value) == too_long(Limits(media_seconds=limit))
    assert str(refused.value) == f"the video is longer than the {words} limit"
    assert not dst.exists()


def test_a_header_that_understates_the_length_is_caught_by_the_output_cap(media, tmp_path):
    """The header claims 1 s of a 3 s file: ffmpeg stops just past the limit, and says so."""
    src, dst = media("mkv_mp3"), tmp_path / "out.mp3"
    lying = ffmpeg.MediaInfo(1.0, "mp3", "stereo")
    with pytest.raises(PermanentError, match="longer than the 1.5-second limit"):
        _convert(src, dst, Limits(media_seconds=1.5), lying)
    assert _convert(src, dst, Limits(media_seconds=3.5), lying) == pytest.approx(3.0, abs=0.2)


def test_a_header_that_understates_the_length_is_refused_by_the_measuring_pass(media):
    """Normalizing: the first pass (measuring) holds the audio it decodes against the limit,
    so such a file costs one capped pass, not two."""
    src = media("mkv_mp3")
    lying = ffmpeg.MediaInfo(1.0, "mp3", "stereo")
    recipe = plan.make(lying, Options(normalize=True), 2)
    run = ffmpeg.FFmpeg(FFMPEG, Limits(media_seconds=1.5), 600, threading.Event())
    with pytest.raises(PermanentError, match="longer than the 1.5-second limit"):
        run.measure_loudness(str(src), lying, recipe, lambda _: None)
    measured = ffmpeg.FFmpeg(FFMPEG, Limits(media_seconds=3.5), 600, threading.Event())
    assert measured.measure_loudness(str(src), lying, recipe, lambda _: None) is not None


def test_an_mp3_over_the_size_limit_is_refused(samples, tmp_path):
    with pytest.raises(PermanentError, match="the MP3 would be larger than the 1 MiB limit"):
        _convert(make_noise(samples), tmp_path / "out.mp3", Limits(mp3_bytes=MIB))


def test_a_conversion_past_its_processor_time_is_killed_for_good(samples, tmp_path):
    """300 s of noise need several seconds of processor time to encode; 1 s is allowed."""
    with pytest.raises(PermanentError, match="the conversion needed more than the 1 second of "
                                             "processor time allowed"):
        _convert(make_noise(samples), tmp_path / "out.mp3", Limits(cpu_seconds=1))


def test_the_limits_are_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("MAX_MEDIA_SECONDS", "5400")
    monkeypatch.setenv("FFMPEG_CPU_SECONDS", "600")
    monkeypatch.setenv("FFMPEG_MEMORY_BYTES", str(512 * MIB))
    monkeypatch.setenv("MAX_MP3_BYTES", str(100 * MIB))
    assert ConverterConfig.from_env().limits == Limits(5400, 600, 512 * MIB, 100 * MIB)
    monkeypatch.setenv("FFMPEG_MEMORY_BYTES", str(64 * MIB))  # ffmpeg could not even start
    with pytest.raises(ConfigError, match="FFMPEG_MEMORY_BYTES must be >= 268435456"):
        ConverterConfig.from_env()


def test_the_long_job_limits_are_read_from_the_environment_and_must_be_positive(monkeypatch):
    config = ConverterConfig.from_env()
    assert (config.long_job_seconds, config.long_job_bytes) == (600.0, 256 * MIB)
    monkeypatch.setenv("LONG_JOB_SECONDS", "90")
    monkeypatch.setenv("LONG_JOB_BYTES", str(MIB))
    config = ConverterConfig.from_env()
    assert (config.long_job_seconds, config.long_job_bytes) == (90.0, MIB)
    monkeypatch.setenv("LONG_JOB_SECONDS", "0")
    with pytest.raises(ConfigError, match="LONG_JOB_SECONDS must be more than 0, got 0"):
        ConverterConfig.from_env()
