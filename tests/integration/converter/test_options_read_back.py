"""Each conversion option, proved on the MP3 the converter stores, read back from GridFS.

Durations are measured by decoding the MP3 with ffmpeg (samples / 44.1 kHz), loudness with
ffmpeg's ebur128 filter, bit rates from the MPEG frame headers, tags with mutagen.
"""

import functools
import json

import gridfs
import pytest
from bson import ObjectId
from mutagen.id3 import ID3, CTOCFlags, PictureType
from mutagen.mp3 import MP3, BitrateMode

from common import covers, messages
from common.errors import PermanentError
from common.jobs import Jobs, Status
from common.options import from_fields
from common.store import MP3S, VIDEOS
from converter.worker import ConvertHandler
from tools.media import (
    CHAPTERS,
    MUSIC_RATE,
    MUSIC_SECONDS,
    audio_frame_kbps,
    cut_offset,
    decode_pcm,
    jpeg_size,
    loudness,
    make_chaptered_video,
    make_music,
    make_music_mp3,
    mp3_frames,
)

pytestmark = pytest.mark.integration

OWNER = "listener@example.com"
MP3_FRAME = 1152  # samples in one MPEG-1 Layer III frame
DURATION_TOLERANCE = 0.05  # seconds
COVER = (600, 338)  # the 1280x720 frame scaled to 600 px on its longer side


@pytest.fixture
def convert(store, converter_config, publisher, deliver, channel, tmp_path):
    """convert(source, filename, **fields) -> (job record, path of its MP3).

    The upload is stored and its job recorded as the gateway does, with the options the form
    ``fields`` give; the converter's handler then takes the job's `video` message.
    """
    handler = ConvertHandler(converter_config, store)

    def run(source, filename: str, **fields: str) -> tuple[dict, object]:
        job_id = _submit(store, publisher, channel, source, filename, fields)
        handler.handle(deliver(messages.encode(_video_message(channel, job_id))))
        job = Jobs(store).get(job_id)
        assert job["status"] == Status.DONE, job
        out = tmp_path / f"{job_id}.mp3"
        bucket = gridfs.GridFSBucket(store.db, bucket_name=MP3S)
        out.write_bytes(bucket.open_download_stream(job["mp3_fid"]).read())
        return job, out

    run.handler, run.store = handler, store
    return run


def _submit(store, publisher, channel, source, filename: str, fields: dict) -> str:
    """Store the upload and record its job with the fields' options; the job's id."""
    job_id = ObjectId()
    with open(source, "rb") as fh:
        fid = gridfs.GridFSBucket(store.db, bucket_name=VIDEOS).upload_from_stream(
            filename, fh, metadata={"owner": OWNER, "job_id": str(job_id)})
    options = from_fields(fields, filename).to_doc()
    Jobs(store).create(job_id, OWNER, fid, filename, "video/mp4", source.stat().st_size,
                       publisher, options=options)
    assert Jobs(store).get(str(job_id))["options"] == options
    return str(job_id)


def _video_message(channel, job_id: str) -> messages.VideoMessage:
    """The `video` message the job's creation sent."""
    method, _props, body = channel.basic_get("video", auto_ack=True)
    assert method is not None, "the job was not dispatched"
    msg = messages.VideoMessage(**json.loads(body))
    assert msg.job_id == job_id
    return msg


@functools.cache
def _pcm(path):
    """The decoded samples of a source file (decoded once per run)."""
    return decode_pcm(path)


def _seconds(mp3) -> float:
    """The MP3's duration: its samples decoded by ffmpeg, over the sample rate."""
    return len(decode_pcm(mp3)) / MUSIC_RATE


def _average_kbps(mp3) -> float:
    kbps = audio_frame_kbps(mp3.read_bytes())
    assert len(kbps) > 100, f"only {len(kbps)} MPEG audio frames found"
    return sum(kbps) / len(kbps)


def _chapters(tag: ID3) -> list[tuple[str, int, int]]:
    """(title, start ms, end ms) of the CHAP frames, in the order of the top-level CTOC."""
    (toc,) = tag.getall("CTOC")
    assert toc.flags & CTOCFlags.TOP_LEVEL and toc.flags & CTOCFlags.ORDERED
    chaps = {frame.element_id: frame for frame in tag.getall("CHAP")}
    assert sorted(chaps) == sorted(toc.child_element_ids)
    return [(chaps[i].sub_frames["TIT2"].text[0], chaps[i].start_time, chaps[i].end_time)
            for i in toc.child_element_ids]


def _assert_chapters(tag: ID3, expected, duration: float) -> None:
    """The chapters are the expected ones to the millisecond; the last ends with the audio."""
    found = _chapters(tag)
    assert [title for title, _, _ in found] == [title for title, _, _ in expected]
    assert [start for _, start, _ in found] == [start for _, start, _ in expected]
    assert [end for _, _, end in found[:-1]] == [end for _, _, end in expected[:-1]]
    last_end = found[-1][2]
    assert min(abs(last_end - expected[-1][2]), abs(last_end - duration * 1000)) <= 50, found


def test_a_video_at_cbr_320_with_tags_cover_and_chapters(convert, media_dir):
    job, mp3 = convert(make_chaptered_video(media_dir), "holiday.mp4", quality="320",
                       title="Nuit étoilée", artist="Ана Иванова", album="東京 Sessions")

    info = MP3(mp3).info
    assert (round(info.bitrate / 1000), info.bitrate_mode) == (320, BitrateMode.CBR)
    kbps = audio_frame_kbps(mp3.read_bytes())
    assert len(kbps) > 400 and set(kbps) == {320}
    assert job["mode"] == "encode" and abs(job["bitrate"] - 320) <= 3

    tag = ID3(mp3)
    assert tag.version == (2, 4, 0)
    assert [tag[name].text for name in ("TIT2", "TPE1", "TALB")] == [
        ["Nuit étoilée"], ["Ана Иванова"], ["東京 Sessions"]]

    (apic,) = tag.getall("APIC")
    assert apic.type == PictureType.COVER_FRONT and apic.mime == "image/jpeg"
    width, height = jpeg_size(apic.data)
    assert width == COVER[0] and abs(height - COVER[1]) <= 1, (width, height)
    assert job["cover"] == {"width": width, "height": height, "size": len(apic.data)}
    assert covers.load(convert.store, job["cover_fid"]) == apic.data  # its own file too

    duration = _seconds(mp3)
    assert abs(duration - MUSIC_SECONDS) <= DURATION_TOLERANCE
    _assert_chapters(tag, CHAPTERS, duration)
    assert job["chapters"] == len(CHAPTERS)


def test_vbr_qualities_order_their_bit_rates_on_music(convert, media_dir):
    music = make_music(media_dir)
    results = {quality: convert(music, "Night Drive.flac", quality=quality)
               for quality in ("v0", "v2", "v5")}
    average = {quality: _average_kbps(mp3) for quality, (_, mp3) in results.items()}
    assert average["v0"] > 200, average
    assert average["v5"] < 0.85 * average["v2"] < 0.85 * average["v0"], average
    for quality, (job, mp3) in results.items():
        assert MP3(mp3).info.bitrate_mode == BitrateMode.VBR
        assert job["mode"] == "encode"
        assert abs(job["bitrate"] - average[quality]) <= 0.05 * average[quality], (
            quality, job["bitrate"], average[quality])

    job, mp3 = results["v2"]
    tag = ID3(mp3)
    assert tag["TIT2"].text == ["Night Drive"]  # no title asked: the file's name
    assert "TPE1" not in tag and "TALB" not in tag
    assert tag.getall("APIC") == [] and job["cover"] is None  # audio only: no picture
    assert job["cover_fid"] is None
    assert tag.getall("CTOC") == [] and tag.getall("CHAP") == [] and job["chapters"] == 0


def test_a_trimmed_video_is_encoded_from_start_to_end_with_its_chapters_moved(
        convert, media_dir):
    video = make_chaptered_video(media_dir)
    job, mp3 = convert(video, "holiday.mp4", start="0:05", end="9.25", cover="none")

    assert job["mode"] == "encode"
    out = decode_pcm(mp3)
    assert abs(len(out) / MUSIC_RATE - 4.25) <= DURATION_TOLERANCE, len(out) / MUSIC_RATE
    offset = cut_offset(_pcm(video), out)
    assert abs(offset - 5 * MUSIC_RATE) <= MP3_FRAME, offset - 5 * MUSIC_RATE

    tag = ID3(mp3)
    assert tag.getall("APIC") == [] and job["cover"] is None  # cover=none
    assert job["cover_fid"] is None
    assert [doc for doc in convert.store.files(MP3S).find({"metadata.job_id": str(job["_id"])})
            if covers.is_cover(doc)] == []
    # The first chapter ended before the start; the next two move 5 s earlier, the last is
    # cut at the end.
    _assert_chapters(tag, [(CHAPTERS[1][0], 0, 3500), (CHAPTERS[2][0], 3500, 4250)],
                     len(out) / MUSIC_RATE)
    assert job["chapters"] == 2


def test_a_trimmed_mp3_keeps_its_own_frames(convert, media_dir):
    source = make_music_mp3(media_dir)
    job, mp3 = convert(source, "music.mp3", start="3.2", end="8.7")

    assert job["mode"] == "copy"
    out = decode_pcm(mp3)
    assert abs(len(out) / MUSIC_RATE - 5.5) <= DURATION_TOLERANCE, len(out) / MUSIC_RATE
    offset = cut_offset(_pcm(source), out)
    assert abs(offset - 3.2 * MUSIC_RATE) <= MP3_FRAME, offset - 3.2 * MUSIC_RATE

    # copied, not re-encoded: the MP3's audio frames are a run of the source's, byte for byte
    theirs, ours = _frame_bytes(source.read_bytes()), _frame_bytes(mp3.read_bytes())
    assert len(ours) > 150
    first = theirs.index(ours[0])
    assert theirs[first:first + len(ours)] == ours


def _frame_bytes(data: bytes) -> list[bytes]:
    """Each audio frame's bytes (the Xing/Info header frame left out)."""
    frames = mp3_frames(data)
    ends = [pos for pos, _, _ in frames[1:]] + [None]
    return [data[pos:end] for (pos, _, header), end in zip(frames, ends, strict=True)
            if not header][:-1]  # the last frame's end is not known for sure: left out


def test_normalize_brings_music_to_minus_16_lufs_under_the_true_peak_ceiling(
        convert, media_dir):
    source = make_music_mp3(media_dir)
    before, _ = loudness(source)
    assert before < -22, f"the source is already at {before} LUFS"

    job, mp3 = convert(source, "music.mp3", normalize="true")
    assert job["mode"] == "encode"  # an MP3 source is re-encoded to change its level
    integrated, true_peak = loudness(mp3)
    assert abs(integrated - (-16)) <= 1.0, (before, integrated)
    assert true_peak <= -1.0, true_peak
    assert abs(_seconds(mp3) - MUSIC_SECONDS) <= DURATION_TOLERANCE


@pytest.mark.parametrize("fields, named", [({"start": "20", "end": "25"}, "trim start"),
                                           ({"start": "5", "end": "0:30"}, "trim end")])
def test_a_trim_past_the_end_of_the_media_fails_the_job_naming_the_trim(
        convert, store, publisher, deliver, channel, media_dir, fields, named):
    job_id = _submit(store, publisher, channel, make_chaptered_video(media_dir), "short.mp4",
                     fields)
    delivery = deliver(messages.encode(_video_message(channel, job_id)))
    with pytest.raises(PermanentError, match=named) as raised:
        convert.handler.handle(delivery)
    assert convert.handler.on_failure(delivery, str(raised.value), permanent=True) is True
    job = Jobs(store).get(job_id)
    assert job["status"] == Status.FAILED and named in job["error"], job["error"]
    assert list(store.files(MP3S).find({"metadata.job_id": job_id})) == []
