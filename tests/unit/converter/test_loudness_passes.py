"""The loudness measuring pass (ebur128, and loudnorm's own first pass only when loudnorm's
dynamic mode follows) against loudnorm's first pass alone, as the converter measured before.

Each clip is made with ffmpeg's lavfi sources, normalized twice by the converter's second pass
(``FFmpeg.convert`` with loudnorm linear=true): once with loudnorm's first-pass measurements,
once with ``FFmpeg.measure_loudness``'s (keyed "ebur128" below); the two MP3s' loudness is then
read independently, with ebur128 on the MP3 (tools.media.loudness).
"""

import json
import re
import subprocess

import pytest

from common.errors import PermanentError
from common.options import Options
from converter import ffmpeg, plan
from tools.media import ffmpeg_exe, loudness, make_many_channels

FFMPEG = ffmpeg_exe()
TARGET = plan.LOUDNESS["I"]
AGREE = 0.2  # LU between the two MP3s (each read to 0.1 LU)
NEAR = 0.3  # LU from the target, in linear mode (the MP3 encoder moves the level a little)

# name -> (lavfi source, seconds, the mode loudnorm's second pass takes from the measurement
# ebur128's, and loudnorm's own when it differs). The level changes slowly (a loudness range
# loudnorm's first pass reads as more than 0) but evenly: by its code, that pass feeds its last
# ~3 s to its meter twice, which would otherwise move its reading.
CLIPS = {
    # quiet mono tones, raised by ~20 dB
    "mono-quiet": ("aevalsrc='0.05*(0.8+0.2*sin(2*PI*t/6))*(sin(2*PI*220*t)"
                   "+0.5*sin(2*PI*660*t))':s=44100:c=mono", 30, "linear"),
    # a steady level (the benchmark's tones and noise): a range of 0, which loudnorm takes
    # from its own first pass as "not measured" and levels dynamically; from ebur128's as 0.01
    "steady": ("aevalsrc='0.3*sin(440*2*PI*t)+0.05*(random(0)-0.5)|"
               "0.3*sin(660*2*PI*t)+0.05*(random(1)-0.5)':s=48000", 30, "linear/dynamic"),
    # loud stereo tones, lowered by ~8 dB
    "stereo-loud": ("aevalsrc='0.5*(0.8+0.2*sin(2*PI*t/6))*sin(2*PI*330*t)|"
                    "0.4*(0.8+0.2*sin(2*PI*t/6))*sin(2*PI*440*t)':s=48000", 30, "linear"),
    # 5.1: brown noise on all six channels, mixed down to stereo by both passes
    "surround": ("anoisesrc=c=brown:a=0.05:r=48000:d=30:seed=7,volume='0.8+0.2*sin(2*PI*t/6)'"
                 ":eval=frame,aformat=channel_layouts=mono,asplit=6[a][b][c][d][e][f];"
                 "[a][b][c][d][e][f]join=inputs=6:channel_layout=5.1", 30, "linear"),
    # pink noise with a loud click every 2 s: raised to -16 LUFS the clicks would pass the
    # -1.5 dBTP ceiling, so loudnorm refuses linear mode and levels dynamically
    "peaks": ("anoisesrc=c=pink:a=0.02:r=44100:d=30:seed=7,"
              "volume='if(lt(mod(t,2),0.01),40,1)':eval=frame", 30, "dynamic"),
}


def loudnorm_first_pass(src, info, recipe) -> dict:
    """What the converter measured before: loudnorm's first pass (print_format=json) over the
    same audio, its report as loudnorm's second pass takes it."""
    downmix = "aformat=channel_layouts=stereo," if info.multichannel else ""
    targets = ":".join(f"{key}={value:g}" for key, value in plan.LOUDNESS.items())
    out = subprocess.run(
        [FFMPEG, "-hide_banner", "-nostdin", "-nostats", *recipe.input_args(), "-i", str(src),
         "-map", "0:a:0", "-vn", "-map_metadata", "-1",
         "-af", f"{downmix}loudnorm={targets}:print_format=json", "-f", "null", "-"],
        capture_output=True, text=True, timeout=300, check=True)
    report = json.loads(re.findall(r'\{\s*"input_i"[^{}]*\}', out.stderr)[-1])
    return {key: float(report[key]) for key in ffmpeg.LOUDNORM_KEYS}


def modes(name: str) -> dict:
    """The modes expected from each measurement of a clip."""
    new, _, old = CLIPS[name][2].partition("/")
    return {"ebur128": new, "loudnorm": old or new}


def mode(measured: dict) -> str:
    """The mode loudnorm's second pass takes from these measurements (af_loudnorm.c, init):
    linear when the gain to the target keeps the true peak under the ceiling and the range is
    within the target's (a 0 range reads as "not measured")."""
    gain = TARGET - measured["input_i"]
    linear = (measured["input_tp"] + gain <= plan.LOUDNESS["TP"]
              and 0 < measured["input_lra"] <= plan.LOUDNESS["LRA"])
    return "linear" if linear else "dynamic"


@pytest.fixture(scope="module")
def normalized(tmp_path_factory):
    """name -> (the two measurements, the two MP3s' (integrated, true peak)), made once."""
    work, made = tmp_path_factory.mktemp("loudness"), {}
    run = ffmpeg.FFmpeg(FFMPEG, timeout=300)

    def make(name):
        if name not in made:
            source, seconds, _ = CLIPS[name]
            src = work / f"{name}.mka"
            subprocess.run([FFMPEG, "-y", "-loglevel", "error", "-filter_complex", source,
                            "-t", str(seconds), "-c:a", "flac", str(src)],
                           check=True, capture_output=True, timeout=120)
            info = run.probe(str(src))
            recipe = plan.make(info, Options(normalize=True, cover="none"), 2)
            measured = {"loudnorm": loudnorm_first_pass(src, info, recipe),
                        "ebur128": run.measure_loudness(str(src), info, recipe, lambda _: None)}
            levels = {}
            for by, values in measured.items():
                dst = work / f"{name}.{by}.mp3"
                run.convert(str(src), str(dst), info, recipe, lambda _: None, loudness=values)
                levels[by] = loudness(dst)
            made[name] = measured, levels
        return made[name]

    return make


@pytest.mark.parametrize("name", [name for name in CLIPS if modes(name)["ebur128"] == "linear"])
def test_in_linear_mode_both_measurements_level_the_audio_alike(normalized, name):
    measured, levels = normalized(name)
    assert {by: mode(values) for by, values in measured.items()} == modes(name), measured
    (old, _), (new, new_peak) = levels["loudnorm"], levels["ebur128"]
    assert round(abs(new - old), 1) <= AGREE, (measured, levels)
    assert round(abs(new - TARGET), 1) <= NEAR, (measured, levels)
    assert new_peak <= plan.LOUDNESS["TP"] + 0.5, (measured, levels)  # the MP3's overshoot


def test_the_measurements_agree(normalized):
    """The numbers themselves, on the clips whose level changes evenly: integrated loudness,
    its gate and the true peak within 0.3 LU (ebur128 prints one decimal, loudnorm two)."""
    for name in (name for name in CLIPS if modes(name)["ebur128"] == "linear"):
        measured, _ = normalized(name)
        old, new = measured["loudnorm"], measured["ebur128"]
        for key in ("input_i", "input_thresh", "input_tp"):
            assert abs(new[key] - old[key]) <= 0.3, (name, key, measured)


def test_loud_peaks_make_both_fall_back_to_dynamic_mode(normalized):
    measured, levels = normalized("peaks")
    assert {by: mode(values) for by, values in measured.items()} == modes("peaks"), measured
    # linear gain to -16 LUFS would put the clicks near +17 dBTP: the limiter held them (the
    # MP3 encoder overshoots on a click by a dB or two)
    for _, peak in levels.values():
        assert peak <= 0.5, levels


def test_in_dynamic_mode_both_measurements_level_the_audio_alike(normalized):
    """loudnorm's dynamic mode falls short of the target when its limiter cuts peaks (here by
    ~6 LU); only its own first pass measures that shortfall (target_offset), on its dynamic
    output. So when ebur128's values say the dynamic mode follows, that pass runs too and its
    values are used: the MP3 is levelled as before."""
    measured, levels = normalized("peaks")
    assert measured["ebur128"]["target_offset"] != ffmpeg.TARGET_OFFSET, measured
    for key in ffmpeg.LOUDNORM_KEYS:
        assert abs(measured["ebur128"][key] - measured["loudnorm"][key]) <= 0.05, measured
    (old, _), (new, _) = levels["loudnorm"], levels["ebur128"]
    assert round(abs(new - old), 1) <= AGREE, (measured, levels)


@pytest.mark.parametrize("name", list(CLIPS))
def test_the_converter_knows_the_mode_loudnorm_will_take(normalized, name):
    """``plan.linear``, which decides whether loudnorm's own first pass must run too, agrees
    with loudnorm's rule on every clip's measurements."""
    measured, _ = normalized(name)
    for values in measured.values():
        assert plan.linear(values) == (mode(values) == "linear"), (name, measured)


@pytest.mark.parametrize("source", ["anullsrc=r=48000:cl=stereo",  # digital silence: -inf
                                    "anoisesrc=a=0.00003:r=48000:seed=3"])  # under -70 LUFS
def test_silence_has_no_level_to_bring_up(tmp_path, source):
    src = tmp_path / "silence.mka"
    subprocess.run([FFMPEG, "-y", "-loglevel", "error", "-f", "lavfi", "-i", source, "-t", "5",
                    "-c:a", "flac", str(src)], check=True, capture_output=True, timeout=60)
    run = ffmpeg.FFmpeg(FFMPEG, timeout=60)
    info = run.probe(str(src))
    recipe = plan.make(info, Options(normalize=True), 2)
    shares = []
    assert run.measure_loudness(str(src), info, recipe, shares.append) is None
    assert shares and shares[-1] == 50.0  # the first half of the job's progress


def test_audio_that_cannot_be_measured_is_refused_with_the_reason(tmp_path):
    """9 channels with no speaker layout pass the probe, but cannot be mixed down to stereo
    for the measurement: the job fails on the first pass, saying why."""
    src = make_many_channels(tmp_path, 9, seconds=0.5)
    run = ffmpeg.FFmpeg(FFMPEG, timeout=60)
    info = run.probe(str(src))
    with pytest.raises(PermanentError) as failed:
        run.measure_loudness(str(src), info, plan.make(info, Options(normalize=True), 2),
                             lambda _: None)
    assert str(failed.value).startswith("the loudness of the audio could not be measured: its "
                                        "9 channels have no speaker layout"), failed.value
    assert failed.value.kind == "not_media"
