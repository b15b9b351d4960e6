"""The MP3 stored while ffmpeg writes it (converter.upload), in the test MongoDB: chunks go
out as the file grows, no one sees the file before it is whole, and what is stored is always
the real tag and the audio as ffmpeg left it (its first frame rewritten at the end)."""

import os
import threading
import time

import pytest

from common.errors import RetryableError
from common.store import CHUNK_SIZE, MP3S
from converter.upload import HOLD_BYTES, POLL_SECONDS, MP3Upload

TAG = b"ID3" + b"t" * 1000
AUDIO = os.urandom(5 * CHUNK_SIZE + 12345)


@pytest.fixture(autouse=True)
def _collections(store):
    """The collections and indexes, made at start as the converter makes them."""
    store.ensure_indexes()


def _chunks(store, upload) -> int:
    return len(list(store.db[f"{MP3S}.chunks"].find({"files_id": upload._writer.file_id},
                                                    {"n": 1})))


def _stored(store, fid) -> bytes:
    with store.open_download(MP3S, fid) as reader:
        return reader.read()


def _wait_for(predicate, seconds=5.0):
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(POLL_SECONDS / 5)


def _upload(store, path, guess):
    return MP3Upload(store.open_upload(MP3S, "a.mp3", {"owner": "x"}), str(path), guess)


def test_chunks_are_stored_as_ffmpeg_writes_and_the_file_appears_whole(store, tmp_path):
    path = tmp_path / "audio.mp3"
    guessed = threading.Event()
    with _upload(store, path, lambda: TAG if guessed.is_set() else None) as upload:
        with open(path, "wb") as out:  # ffmpeg writing, a chunk at a time
            out.write(AUDIO[:3 * CHUNK_SIZE])
            out.flush()
            time.sleep(3 * POLL_SECONDS)
            assert _chunks(store, upload) == 0  # the tag is not known yet
            guessed.set()
            _wait_for(lambda: _chunks(store, upload) == 2)  # chunks 1 and 2; 0 holds the tag
            # not yet whole: no file document of ours (nx-27017 shows one of its own, empty)
            assert (store.find_file(MP3S, upload._writer.file_id) or {}).get("length", 0) == 0
            out.write(AUDIO[3 * CHUNK_SIZE:])
            out.seek(0)
            out.write(b"XING" * 100)  # ffmpeg rewrites its first frame as it ends
        fid = upload.finish(TAG)
    assert upload.streamed >= 2
    audio = b"XING" * 100 + AUDIO[400:]
    assert _stored(store, fid) == TAG + audio
    assert _chunks(store, upload) == -(-(len(TAG) + len(audio)) // CHUNK_SIZE)


def test_a_wrong_guess_stores_the_real_tag_and_leaves_nothing_behind(store, tmp_path):
    path = tmp_path / "audio.mp3"
    path.write_bytes(AUDIO)
    real = TAG + b"chapters" * 5000  # the chapters came out only at the end
    with _upload(store, path, lambda: TAG) as upload:
        _wait_for(lambda: _chunks(store, upload) >= 4)
        fid = upload.finish(real)
    assert upload.streamed == 0
    assert _stored(store, fid) == real + AUDIO
    assert _chunks(store, upload) == -(-(len(real) + len(AUDIO)) // CHUNK_SIZE)


def test_without_a_guess_all_of_it_is_stored_at_the_end(store, tmp_path):
    path = tmp_path / "audio.mp3"
    path.write_bytes(AUDIO[:1000])  # smaller than the part held back
    big_tag = b"ID3" + os.urandom(CHUNK_SIZE + HOLD_BYTES)  # a tag over a chunk long
    with _upload(store, path, lambda: None) as upload:
        time.sleep(2 * POLL_SECONDS)
        assert _chunks(store, upload) == 0
        fid = upload.finish(big_tag)
    assert _stored(store, fid) == big_tag + AUDIO[:1000]
    assert _chunks(store, upload) == 2


def test_a_failed_conversion_leaves_no_chunk_and_no_file(store, tmp_path):
    path = tmp_path / "audio.mp3"
    path.write_bytes(AUDIO)
    try:
        with _upload(store, path, lambda: TAG) as upload:
            _wait_for(lambda: _chunks(store, upload) >= 4)
            raise RuntimeError("ffmpeg failed")
    except RuntimeError:
        pass
    assert _chunks(store, upload) == 0
    assert (store.find_file(MP3S, upload._writer.file_id) or {}).get("length", 0) == 0
    assert not [t for t in threading.enumerate() if t.name == "mp3-upload"]


def test_chunks_removed_meanwhile_as_orphans_fail_the_store_instead_of_leaving_a_hole(
        store, tmp_path):
    """A sweep with a grace shorter than a conversion takes the chunks stored so far for an
    orphan's: the job is retried, not finished with a hole in its MP3."""
    path = tmp_path / "audio.mp3"
    path.write_bytes(AUDIO)
    with pytest.raises(RetryableError, match="went missing"):
        with _upload(store, path, lambda: TAG) as upload:
            _wait_for(lambda: _chunks(store, upload) >= 4)
            store.delete_file(MP3S, upload._writer.file_id)  # what the sweep does
            upload.finish(TAG)
    assert _chunks(store, upload) == 0  # and what was stored is gone


def test_an_mp3_larger_than_one_server_reply_is_stored_whole(store, tmp_path):
    # nx-27017 answers a query for chunks with all of them in one reply, which may carry at
    # most 48 MB: finding every chunk of a 50 MB MP3 at once fails there (a 40-minute upload).
    path = tmp_path / "audio.mp3"
    audio = os.urandom(50 * 1000 * 1000)
    path.write_bytes(audio)
    with _upload(store, path, lambda: None) as upload:
        fid = upload.finish(TAG)
    assert _stored(store, fid) == TAG + audio
