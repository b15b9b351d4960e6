"""Small test media made with ffmpeg's lavfi sources, and probes of media files."""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
from pathlib import Path

SECONDS = 3
_VIDEO = ["-f", "lavfi", "-i", f"testsrc=size=160x120:rate=15:duration={SECONDS}"]
_STEREO = ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={SECONDS}"]
_SURROUND = [
    "-f",
    "lavfi",
    "-i",
    "aevalsrc=sin(440*2*PI*t)|sin(550*2*PI*t)|sin(660*2*PI*t)|0.5*sin(60*2*PI*t)"
    f"|sin(770*2*PI*t)|sin(880*2*PI*t):s=48000:c=5.1:d={SECONDS}",
]
_H264 = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]

# kind -> (file name, ffmpeg arguments between the inputs and the output)
KINDS: dict[str, tuple[str, list[str]]] = {
    "mp4_aac51": ("surround.mp4", [*_VIDEO, *_SURROUND, *_H264, "-c:a", "aac", "-ac", "6"]),
    "mkv_mp3": ("clip.mkv", [*_VIDEO, *_STEREO, *_H264, "-c:a", "libmp3lame", "-ac", "2"]),
    "webm_opus": (
        "clip.webm",
        [*_VIDEO, *_STEREO, "-c:v", "libvpx", "-deadline", "realtime", "-c:a", "libopus"],
    ),
    "mov": ("clip.mov", [*_VIDEO, *_STEREO, *_H264, "-c:a", "aac", "-ac", "2"]),
    "no_audio": ("silent.mp4", [*_VIDEO, *_H264]),
}
TEXT_KIND = ("text", "not_a_video.mp4")


def ffmpeg_exe() -> str:
    """FFMPEG_BINARY if set, else the ffmpeg shipped in the imageio-ffmpeg wheel."""
    if os.environ.get("FFMPEG_BINARY"):
        return os.environ["FFMPEG_BINARY"]
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def make_media(kind: str, directory: Path) -> Path:
    """The test file of this kind in directory, generated on first use."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if kind == TEXT_KIND[0]:
        path = directory / TEXT_KIND[1]
        if not path.exists():
            path.write_text("This is a text file, not a video.\n" * 20)
        return path
    if kind not in KINDS:
        raise ValueError(f"unknown media kind {kind!r}; known: {sorted(KINDS) + ['text']}")
    name, args = KINDS[kind]
    path = directory / name
    if path.exists():
        return path
    tmp = directory / f".tmp-{name}"
    cmd = [ffmpeg_exe(), "-y", "-hide_banner", "-loglevel", "error", *args, "-t", str(SECONDS)]
    subprocess.run([*cmd, str(tmp)], check=True, capture_output=True, timeout=120)
    os.replace(tmp, path)
    return path


def _ffprobe(path: Path, *args: str) -> dict | None:
    """ffprobe's JSON answer, or None when ffprobe is not installed."""
    exe = shutil.which("ffprobe")
    if exe is None:
        return None
    out = subprocess.run(
        [exe, "-v", "error", "-of", "json", *args, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return json.loads(out.stdout or "{}")


def _ffmpeg_info(path: Path) -> str:
    """What `ffmpeg -i` prints about a file."""
    out = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True, timeout=60
    )
    return out.stderr


def ffprobe_duration(path: str | os.PathLike) -> float | None:
    """Duration in seconds, None when the file is not readable media."""
    probe = _ffprobe(Path(path), "-show_entries", "format=duration")
    if probe is not None:
        duration = probe.get("format", {}).get("duration")
        return float(duration) if duration not in (None, "N/A") else None
    match = re.search(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)", _ffmpeg_info(Path(path)))
    if not match:
        return None
    hours, minutes, seconds = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def ffprobe_codec(path: str | os.PathLike, stream: str = "a") -> str | None:
    """Codec name of the first audio ("a") or video ("v") stream, None when there is none."""
    probe = _ffprobe(
        Path(path), "-select_streams", f"{stream}:0", "-show_entries", "stream=codec_name"
    )
    if probe is not None:
        streams = probe.get("streams") or []
        return streams[0].get("codec_name") if streams else None
    label = {"a": "Audio", "v": "Video"}[stream]
    match = re.search(rf"Stream #\d+:\d+.*?: {label}: (\w+)", _ffmpeg_info(Path(path)))
    return match.group(1) if match else None


# -- hostile samples: what an attacker uploads ---------------------------------------------------
SECRET_SECONDS = 7.3  # no test clip is this long: an MP3 of this length came from the secret
TEN_HOURS = 36000
MANIFESTS = ("dash", "hls", "ffconcat", "sdp")
DISGUISES = ("plain", "id3", "ftyp")
_MANIFEST_NAMES = {"dash": "manifest.mpd", "hls": "playlist.m3u8", "ffconcat": "list.ffconcat",
                   "sdp": "stream.sdp"}
# A 20-byte ISO-BMFF `ftyp` box, exactly as an MP4 file begins.
FTYP_BOX = b"\x00\x00\x00\x14ftypisom\x00\x00\x02\x00isom"


def _generate(path: Path, args: list[str]) -> Path:
    """Run ffmpeg once to make ``path`` (kept for later calls)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".tmp-{path.name}")
        subprocess.run([ffmpeg_exe(), "-y", "-hide_banner", "-loglevel", "error", *args,
                        str(tmp)], check=True, capture_output=True, timeout=300)
        os.replace(tmp, path)
    return path


def make_secret(directory: Path) -> Path:
    """A local file a manifest points at: 7.3 s of a 300 Hz tone, AAC in MPEG-TS.

    MPEG-TS is an extension every playlist demuxer (HLS, DASH, concat) agrees to read.
    """
    return _generate(Path(directory) / "secret.ts", [
        "-f", "lavfi", "-i", f"sine=frequency=300:sample_rate=44100:duration={SECRET_SECONDS}",
        "-c:a", "aac", "-f", "mpegts"])


def _id3_tag(total: int) -> bytes:
    """An empty ID3v2.4 tag of ``total`` bytes (header + padding)."""
    body = total - 10
    syncsafe = bytes((body >> shift) & 0x7F for shift in (21, 14, 7, 0))
    return b"ID3\x04\x00\x00" + syncsafe + b"\x00" * body


def manifest_text(kind: str, secret: Path) -> bytes:
    """A playlist or manifest that makes a plain ffmpeg read ``secret`` (SDP: listen on UDP).

    DASH begins with `<!--free-->` so that bytes 4-8 read `free`, an MP4 box name. ffconcat
    names the secret relative to itself: the concat demuxer's safe mode refuses absolute paths.
    """
    if kind == "dash":
        return (
            '<!--free--><MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" '
            'profiles="urn:mpeg:dash:profile:isoff-on-demand:2011" minBufferTime="PT1S" '
            f'mediaPresentationDuration="PT{SECRET_SECONDS}S"><Period><AdaptationSet '
            'mimeType="video/mp2t"><Representation id="a" bandwidth="64000">'
            f"<BaseURL>file://{secret}</BaseURL></Representation></AdaptationSet></Period></MPD>\n"
        ).encode()
    if kind == "hls":
        return (f"#EXTM3U\n#EXT-X-TARGETDURATION:8\n#EXTINF:{SECRET_SECONDS},\n{secret}\n"
                "#EXT-X-ENDLIST\n").encode()
    if kind == "ffconcat":
        return f"ffconcat version 1.0\nfile '{secret.name}'\n".encode()
    if kind == "sdp":
        return (b"v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=stream\r\nc=IN IP4 127.0.0.1\r\n"
                b"t=0 0\r\nm=audio 49170 RTP/AVP 14\r\n")
    raise ValueError(f"unknown manifest {kind!r}; known: {MANIFESTS}")


def make_manifest(kind: str, directory: Path, disguise: str = "plain") -> Path:
    """A manifest next to the secret (made too), as text or behind a media-looking start.

    disguise: "plain" (the text), "id3" (behind an empty ID3 tag longer than the upload check
    reads, which ffmpeg's format detection skips), "ftyp" (behind an MP4 `ftyp` box).
    """
    directory = Path(directory)
    secret = make_secret(directory)
    prefix = {"plain": b"", "id3": _id3_tag(5000), "ftyp": FTYP_BOX}[disguise]
    name = _MANIFEST_NAMES[kind]
    path = directory / (name if disguise == "plain" else f"{disguise}-{name}")
    path.write_bytes(prefix + manifest_text(kind, secret))
    return path


def make_ten_hour_flac(directory: Path) -> Path:
    """Ten real hours of silence as FLAC (8 kHz mono, 16384-sample frames): about 230 KB."""
    return _generate(Path(directory) / "ten-hours.flac", [
        "-f", "lavfi", "-i", "anullsrc=r=8000:cl=mono:nb_samples=16384", "-t", str(TEN_HOURS),
        "-c:a", "flac", "-compression_level", "0", "-frame_size", "16384"])


def make_noise(directory: Path, seconds: int = 300) -> Path:
    """Stereo noise as Opus in WebM: small to upload, seconds of processor time to convert."""
    return _generate(Path(directory) / f"noise-{seconds}s.webm", [
        "-f", "lavfi", "-i", f"anoisesrc=r=48000:a=0.3:d={seconds}", "-ac", "2",
        "-c:a", "libopus", "-b:a", "32k"])


# What ffmpeg's own error output looks like, which no job's error may show: memory addresses,
# component tags ("[out#0/mp3 @ 0x55f1...]"), C source positions, its internal vocabulary.
FFMPEG_INTERNALS = re.compile(
    r"0x[0-9a-fA-F]{4,}|\[[^\]\n]* @ |\b\w+\.[ch]:\d+|Nothing was written|Task finished|"
    r"Terminating thread|Error (?:opening|reinitializing|while)|Could not open encoder|"
    r"Rematrix|SWR|aresample|pointer|errno|AVERROR|-22\b")


def make_many_channels(directory: Path, channels: int = 64, seconds: float = 1.0) -> Path:
    """A WAV of ``channels`` channels with no speaker layout (a multitrack recording's): each
    channel its own tone, 8 kHz. ffmpeg mixes such channels down to stereo only for the counts
    it has a default layout for (1 to 8 and a few more, not 9 nor over 24)."""
    tones = "|".join(f"0.1*sin({200 + 10 * index}*2*PI*t)" for index in range(channels))
    return _generate(Path(directory) / f"{channels}-channels.wav", [
        "-f", "lavfi", "-i", f"aevalsrc={tones}:s=8000:d={seconds}", "-c:a", "pcm_s16le"])


# -- files whose header lies about their length ---------------------------------------------------
LYING_SECONDS = 600


def _clock(seconds: float) -> str:
    """HH:MM:SS.nnnnnnnnn, as Matroska's DURATION tags write a length."""
    nanoseconds = round(seconds * 1e9)
    whole, fraction = divmod(nanoseconds, 10 ** 9)
    return f"{whole // 3600:02d}:{whole // 60 % 60:02d}:{whole % 60:02d}.{fraction:09d}"


def _patched(path: Path, data: bytes) -> Path:
    """``data`` as ``path``, written whole or not at all."""
    tmp = path.with_name(f".tmp-{path.name}")
    tmp.write_bytes(bytes(data))
    os.replace(tmp, path)
    return path


def make_lying_mkv(directory: Path, factor: float, seconds: int = LYING_SECONDS) -> Path:
    """``seconds`` of a stereo tone as FLAC in Matroska, whose header says it lasts ``factor``
    times that: the segment's Duration element (and the track's DURATION tag) patched."""
    real = _generate(Path(directory) / f"tone-{seconds}s.mkv", [
        "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=44100:duration={seconds}",
        "-ac", "2", "-c:a", "flac"])
    data = bytearray(real.read_bytes())
    # Duration (ID 0x4489), an 8-byte float of milliseconds (the default 1 ms TimestampScale)
    at = data.find(b"\x44\x89\x88")
    assert at > 0 and data.find(b"\x44\x89\x88", at + 1) < 0, "no single Duration element"
    assert struct.unpack(">d", data[at + 3:at + 11])[0] == seconds * 1000.0
    data[at + 3:at + 11] = struct.pack(">d", seconds * 1000.0 * factor)
    told, lie = _clock(seconds).encode(), _clock(seconds * factor).encode()
    data = data.replace(told, lie) if len(told) == len(lie) else data
    return _patched(Path(directory) / f"tone-{seconds}s-says-{factor:g}x.mkv", data)


def make_lying_mp3(directory: Path, factor: float, seconds: int = 60) -> Path:
    """``seconds`` of a tone as a VBR MP3 whose Xing header counts ``factor`` times its frames
    (so ffmpeg takes it to last ``factor`` times as long)."""
    real = _generate(Path(directory) / f"tone-{seconds}s.mp3", [
        "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=44100:duration={seconds}",
        "-c:a", "libmp3lame", "-q:a", "2"])
    data = bytearray(real.read_bytes())
    at = data.find(b"Xing")
    assert at > 0 and int.from_bytes(data[at + 4:at + 8], "big") & 1, "no Xing frame count"
    frames = int.from_bytes(data[at + 8:at + 12], "big")
    data[at + 8:at + 12] = round(frames * factor).to_bytes(4, "big")
    return _patched(Path(directory) / f"tone-{seconds}s-says-{factor:g}x.mp3", data)


# -- music-like samples: what the conversion options are measured on -----------------------------
MUSIC_SECONDS = 12
MUSIC_RATE = 44100
VIDEO_SIZE = (1280, 720)
# (title, start ms, end ms) of the chaptered video's chapters; one title is not ASCII
CHAPTERS = (("Opening", 0, 4000), ("Café à la carte — 夜", 4000, 8500),
            ("Finale", 8500, MUSIC_SECONDS * 1000))
# Two decorrelated pink noises (one per channel) under a few slowly gliding and swelling tones,
# about -28 LUFS integrated: far from the -16 LUFS that normalizing aims at.
_MUSIC_GRAPH = ";".join([
    f"anoisesrc=color=pink:amplitude=0.5:r={MUSIC_RATE}:d={MUSIC_SECONDS}:seed=7[l]",
    f"anoisesrc=color=pink:amplitude=0.5:r={MUSIC_RATE}:d={MUSIC_SECONDS}:seed=11[r]",
    "[l][r]join=inputs=2:channel_layout=stereo[noise]",
    "aevalsrc=0.3*sin(2*PI*(220+3*sin(2*PI*0.5*t))*t)"
    "+0.2*sin(2*PI*330*t)*(0.6+0.4*sin(2*PI*0.25*t))"
    "+0.15*sin(2*PI*(554+5*sin(2*PI*0.7*t))*t)"
    "|0.3*sin(2*PI*(220+3*sin(2*PI*0.5*t))*t)"
    "+0.2*sin(2*PI*440*t)*(0.6+0.4*sin(2*PI*0.3*t))"
    "+0.1*sin(2*PI*(659+4*sin(2*PI*0.4*t))*t)"
    f":s={MUSIC_RATE}:d={MUSIC_SECONDS}:c=stereo[tones]",
    "[noise][tones]amix=inputs=2:normalize=0,volume=0.115",
])


def make_music(directory: Path) -> Path:
    """12 s of music-like stereo audio at 44.1 kHz as FLAC, about -28 LUFS."""
    return _generate(Path(directory) / "music.flac",
                     ["-filter_complex", _MUSIC_GRAPH, "-c:a", "flac"])


def make_music_mp3(directory: Path) -> Path:
    """The music as a VBR (V2) MP3 file: a source whose audio frames can be copied."""
    music = make_music(directory)
    return _generate(Path(directory) / "music.mp3",
                     ["-i", str(music), "-c:a", "libmp3lame", "-q:a", "2"])


def chapters_metadata() -> str:
    """CHAPTERS as an ffmetadata file."""
    lines = [";FFMETADATA1", "title=Chaptered clip"]
    for title, start, end in CHAPTERS:
        lines += ["", "[CHAPTER]", "TIMEBASE=1/1000", f"START={start}", f"END={end}",
                  f"title={title}"]
    return "\n".join(lines) + "\n"


def make_chaptered_video(directory: Path) -> Path:
    """A 1280x720 H.264 MP4 with the music as AAC and the three CHAPTERS."""
    directory = Path(directory)
    music = make_music(directory)
    metadata = directory / "chapters.ffmetadata"
    metadata.write_text(chapters_metadata(), encoding="utf-8")
    width, height = VIDEO_SIZE
    return _generate(directory / "chapters.mp4", [
        "-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate=5:duration={MUSIC_SECONDS}",
        "-i", str(music), "-i", str(metadata), "-map", "0:v", "-map", "1:a",
        "-map_metadata", "2", "-map_chapters", "2", *_H264, "-crf", "36",
        "-c:a", "aac", "-b:a", "160k", "-shortest"])


# -- reading an MP3 back: its frames, its decoded samples, its loudness, its cover ---------------
_MPEG1_L3_KBPS = (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)
_MPEG1_RATES = (44100, 48000, 32000)


def mp3_frames(data: bytes) -> list[tuple[int, int, bool]]:
    """(offset, kbit/s, is the Xing/Info header) of each MPEG-1 Layer III frame, in order.

    The frames are walked header to header from the end of the ID3v2 tag(s); a gap or another
    kind of frame ends the walk (an ID3v1 tag, or junk, after the audio).
    """
    pos = 0
    while data[pos:pos + 3] == b"ID3":
        size = 0
        for byte in data[pos + 6:pos + 10]:
            size = size << 7 | byte & 0x7F
        pos += 10 + size + (10 if data[pos + 5] & 0x10 else 0)
    frames = []
    while pos + 4 <= len(data):
        head = int.from_bytes(data[pos:pos + 4], "big")
        if head >> 21 != 0x7FF or (head >> 17) & 0xF != 0b1101:  # sync, MPEG-1, Layer III
            break
        index, rate, padding = (head >> 12) & 0xF, (head >> 10) & 0x3, (head >> 9) & 1
        if index in (0, 15) or rate == 3:
            break
        kbps = _MPEG1_L3_KBPS[index]
        length = 144000 * kbps // _MPEG1_RATES[rate] + padding
        side = 17 if (head >> 6) & 0x3 == 3 else 32  # mono: 17 bytes of side information
        marker = data[pos + 4 + side:pos + 8 + side]
        frames.append((pos, kbps, marker in (b"Xing", b"Info")))
        pos += length
    return frames


def audio_frame_kbps(data: bytes) -> list[int]:
    """The bit rate of each audio frame of an MP3 (its Xing/Info header frame left out)."""
    return [kbps for _, kbps, header in mp3_frames(data) if not header]


def decode_pcm(path: str | os.PathLike, rate: int = MUSIC_RATE):
    """The first audio stream decoded by ffmpeg as float samples, shape (samples, 2)."""
    import numpy

    out = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-i", str(path), "-map", "0:a:0",
         "-ac", "2", "-ar", str(rate), "-f", "f32le", "-"],
        capture_output=True, check=True, timeout=120)
    return numpy.frombuffer(out.stdout, dtype="<f4").reshape(-1, 2)


def cut_offset(source, output, rate: int = MUSIC_RATE) -> int:
    """Where in ``source`` (samples) ``output``'s first sample came from, by cross-correlation.

    A one-second piece from inside the output (clear of a cut's first, possibly garbled,
    frame) is located in the source by FFT cross-correlation of the channels' sum.
    """
    import numpy

    lead = rate // 4
    piece = output[lead:lead + rate].sum(axis=1).astype("f8")
    whole = source.sum(axis=1).astype("f8")
    size = 1 << int(len(whole) + len(piece)).bit_length()
    corr = numpy.fft.irfft(numpy.fft.rfft(whole, size) * numpy.conj(numpy.fft.rfft(piece, size)),
                           size)[:len(whole) - len(piece) + 1]
    return int(numpy.argmax(corr)) - lead


_EBUR128_I = re.compile(r"Integrated loudness:\s*\n\s*I:\s*(-?[\d.]+|-inf) LUFS")
_EBUR128_PEAK = re.compile(r"True peak:\s*\n\s*Peak:\s*(-?[\d.]+|-inf) dBFS")


def loudness(path: str | os.PathLike) -> tuple[float, float]:
    """(integrated loudness in LUFS, true peak in dBTP) by ffmpeg's ebur128 filter."""
    out = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostats", "-i", str(path), "-map", "0:a:0",
         "-filter:a", "ebur128=peak=true", "-f", "null", "-"],
        capture_output=True, text=True, check=True, timeout=120)
    summary = out.stderr[out.stderr.rindex("Summary:"):]
    integrated, peak = _EBUR128_I.search(summary), _EBUR128_PEAK.search(summary)
    return float(integrated.group(1)), float(peak.group(1))


def jpeg_size(data: bytes) -> tuple[int, int]:
    """(width, height) of a JPEG image from its start-of-frame marker."""
    if data[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG image")
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise ValueError(f"no JPEG marker at byte {pos}")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height = int.from_bytes(data[pos + 5:pos + 7], "big")
            width = int.from_bytes(data[pos + 7:pos + 9], "big")
            return width, height
        pos += 2 + length
    raise ValueError("the JPEG image has no start-of-frame marker")
