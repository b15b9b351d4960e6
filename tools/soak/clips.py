"""The files the soak's users upload, made once per run with ffmpeg, and the options they ask."""

from __future__ import annotations

import os
import random
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tools.media import ffmpeg_exe

DONE, FAILED = "done", "failed"


@dataclass(frozen=True)
class Clip:
    """One file to upload: its kind, length and what its conversion must end as."""

    kind: str  # short, long, mp3, no_audio, corrupt, truncated
    path: Path
    seconds: float
    content_type: str
    expected: str  # DONE or FAILED

    @property
    def suffix(self) -> str:
        """The file name's extension, kept in the uploaded name."""
        return self.path.suffix


@dataclass
class Pick:
    """A clip and the options of one upload of it."""

    clip: Clip
    options: dict[str, str] = field(default_factory=dict)
    expected: str = DONE  # what this upload must end as (a trim past the end fails)

    @property
    def label(self) -> str:
        """The clip kind, and whether it is normalized (two passes): jobs that take about as
        long, whose latencies compare."""
        return f"{self.clip.kind}+normalize" if "normalize" in self.options else self.clip.kind


# kind -> (lengths in seconds, weight of the kind among uploads)
KINDS = {
    "short": ((3, 5, 8), 30),
    "long": ((25, 40, 60), 20),
    "mp3": ((15, 30), 20),
    "no_audio": ((4,), 8),
    "corrupt": ((0,), 6),
    "truncated": ((10,), 6),
}


def _ffmpeg(args: list[str], out: Path) -> Path:
    """Run ffmpeg once to make ``out`` (kept if it exists)."""
    if out.exists():
        return out
    tmp = out.with_name(f".tmp-{out.name}")
    subprocess.run([ffmpeg_exe(), "-y", "-hide_banner", "-loglevel", "error", *args, str(tmp)],
                   check=True, capture_output=True, timeout=300)
    os.replace(tmp, out)
    return out


def _video(seconds: float, tone: int, audio: bool = True) -> list[str]:
    """A small moving picture (and a tone): cheap to make, to upload and to convert."""
    args = ["-f", "lavfi", "-i", f"testsrc2=size=320x240:rate=10:duration={seconds}"]
    if audio:
        args += ["-f", "lavfi", "-i",
                 f"sine=frequency={tone}:sample_rate=44100:duration={seconds}"]
    args += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-b:v", "64k"]
    if audio:
        args += ["-c:a", "aac", "-b:a", "96k", "-ac", "2"]
    return args


def make_clips(directory: Path, seed: int) -> list[Clip]:
    """Every clip of every kind, in ``directory``; the seed picks the tones and the garbage."""
    rng = random.Random(f"clips:{seed}")
    directory.mkdir(parents=True, exist_ok=True)
    clips: list[Clip] = []
    for seconds in KINDS["short"][0]:
        path = _ffmpeg(_video(seconds, rng.randrange(200, 900)), directory / f"short-{seconds}.mp4")
        clips.append(Clip("short", path, seconds, "video/mp4", DONE))
    for seconds in KINDS["long"][0]:
        path = _ffmpeg(_video(seconds, rng.randrange(200, 900)), directory / f"long-{seconds}.mkv")
        clips.append(Clip("long", path, seconds, "video/x-matroska", DONE))
    for seconds in KINDS["mp3"][0]:
        args = ["-f", "lavfi", "-i",
                f"sine=frequency={rng.randrange(200, 900)}:sample_rate=44100:duration={seconds}",
                "-c:a", "libmp3lame", "-q:a", "4"]
        path = _ffmpeg(args, directory / f"song-{seconds}.mp3")
        clips.append(Clip("mp3", path, seconds, "audio/mpeg", DONE))
    path = _ffmpeg(_video(4, 0, audio=False), directory / "silent.mp4")
    clips.append(Clip("no_audio", path, 4, "video/mp4", FAILED))
    # An MP4 header and then nothing a demuxer can read.
    corrupt = directory / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"
                        + rng.randbytes(200_000))
    clips.append(Clip("corrupt", corrupt, 0, "video/mp4", FAILED))
    # A real MP4 cut off before its index (ffmpeg writes `moov` last): no stream can be found.
    whole = _ffmpeg(_video(10, rng.randrange(200, 900)), directory / ".whole-10.mp4")
    data = whole.read_bytes()
    cut = directory / "truncated.mp4"
    cut.write_bytes(data[: data.find(b"moov") - 4 if b"moov" in data else len(data) // 2])
    clips.append(Clip("truncated", cut, 10, "video/mp4", FAILED))
    return clips


def pick(clips: list[Clip], rng: random.Random) -> Pick:
    """A clip by the kinds' weights, and options as people use them: mostly none, else a trim,
    loudness normalization, a quality, tags without a cover, or now and then a trim that starts
    past the end of the media (the job must fail, saying why)."""
    kinds = list(KINDS)
    kind = rng.choices(kinds, weights=[KINDS[k][1] for k in kinds])[0]
    clip = rng.choice([c for c in clips if c.kind == kind])
    chosen = Pick(clip, expected=clip.expected)
    if clip.expected != DONE:
        return chosen
    roll = rng.random()
    if roll < 0.15:
        start = round(rng.uniform(0, clip.seconds / 2), 1)
        chosen.options = {"start": str(start),
                          "end": str(round(rng.uniform(start + 1, clip.seconds), 1))}
    elif roll < 0.25:
        chosen.options = {"normalize": "true"}
    elif roll < 0.40:
        chosen.options = {"quality": rng.choice(["v0", "v5", "128", "192", "320"])}
    elif roll < 0.50:
        chosen.options = {"cover": "none", "title": f"Soak {rng.randrange(1000)}",
                          "artist": "The Testers"}
    elif roll < 0.54:
        chosen.options = {"start": str(clip.seconds + 5)}
        chosen.expected = FAILED
    return chosen
