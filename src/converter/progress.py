"""How far one ffmpeg pass is, when the file may lie about its length.

ffmpeg reports the media time it has produced (``out_time``); the share done is that time over
the length the container declares. A header can be wrong (a WAV or MP3 whose header claims
half or twice the audio, an MKV with a wrong Duration): the share then reaches its end at half
way and sticks there, or ends at half and jumps. So the bytes of the input read so far (its
file offset) are watched too. The declared length is believed while the two agree; once the
output passes it, or in a file read front to back the bytes say the media is much longer or
shorter, the rest of the pass follows the rest of the file's bytes (in a file read front to
back, never less than the share of them read). By time alone, the last tenth slows down and
time past the declared length keeps creeping toward the end, never reaching it. The share
never goes back and reaches 1 only when the last byte of the input has been read.
"""

from __future__ import annotations

# Containers ffmpeg reads front to back, one stream's data beside the other's: the share of
# their bytes read is the share of their media time. Not MP4/MOV nor AVI, which may store a
# stream's data apart from the other's (the audio after all of the video).
LINEAR_FORMATS = frozenset({"matroska", "mp3", "wav", "flac", "ogg", "aac", "mpegts", "mpeg",
                            "flv", "asf", "amr", "rm"})
KNEE = 0.9  # by time alone, the share past this slows down: the header may be short
SUSPECT = 1.5  # bytes predicting a length off the declared one by this factor: it is wrong
EVIDENCE = 0.05  # share of the file read (and of the time) before the bytes are listened to
OVERRUN = 0.02  # the output may pass the declared length by this share (+ 0.5 s) and agree


def eased(ratio: float) -> float:
    """The share done for a time ``ratio`` of the declared length: linear up to KNEE, then
    ever slower, 0.95 at the declared end, 0.99 at twice it, never 1."""
    if ratio <= KNEE:
        return max(0.0, ratio)
    return 1.0 - (1.0 - KNEE) ** 2 / (ratio - 2 * KNEE + 1)


class Estimate:
    """The share (0..1) of one pass done, from the media time reached and the bytes read.

    ``declared``: the seconds the pass should produce by the container's header (None: it does
    not say); ``size``: the input's bytes; ``linear``: the whole input is read front to back
    (a linear container, no trim), so the share of its bytes is the share of the work.
    """

    def __init__(self, declared: float | None, size: int, linear: bool):
        self.declared = declared if declared and declared > 0 else None
        self.size = size
        self.linear = linear
        self.done = 0.0
        self.following: tuple[float, float] | None = None  # (done, share read) when it began

    def update(self, seconds: float, position: int | None) -> float | None:
        """The share done now (never less than before); None while nothing can tell."""
        share = None
        if position is not None and self.size > 0:
            share = min(1.0, max(0.0, position / self.size))
        if self.following is None and share is not None and self._declared_wrong(seconds,
                                                                                 share):
            self.following = (self.done, share)
        if self.following is not None:
            if share is None:
                return self.done
            done, start = self.following
            fraction = done + (1.0 - done) * (share - start) / (1.0 - start) if start < 1 else done
            if self.linear:
                fraction = max(fraction, share)  # read front to back: the share is the work's
        elif self.declared is not None:
            fraction = eased(seconds / self.declared)
        else:
            return None  # no length and no byte count: nothing to measure against
        self.done = max(self.done, min(1.0, fraction))
        return self.done

    def _declared_wrong(self, seconds: float, share: float) -> bool:
        """Whether the declared length is missing or contradicted (then the bytes lead)."""
        if self.declared is None:
            return True
        if seconds > self.declared * (1 + OVERRUN) + 0.5:
            return True  # the output passed it
        if not self.linear or share < EVIDENCE or seconds < self.declared * EVIDENCE:
            return False
        predicted = seconds / share  # the length, from the rate the file is read at
        return not self.declared / SUSPECT <= predicted <= self.declared * SUSPECT
