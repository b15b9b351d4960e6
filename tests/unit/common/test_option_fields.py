"""The upload's conversion options: each field checked, combinations refused, defaults kept."""

import pytest

from common.options import InvalidOption, Options, clock, from_fields, parse_time


@pytest.mark.parametrize("text, seconds", [
    ("90", 90.0), ("90.5", 90.5), ("0", 0.0), ("1:30", 90.0), ("01:30.250", 90.25),
    ("1:00:00", 3600.0), ("00:01:30.250", 90.25), ("12:05:09.5", 43509.5),
])
def test_times_in_seconds_or_clock_form(text, seconds):
    assert parse_time("start", text) == seconds


@pytest.mark.parametrize("text", ["abc", "-5", "1:60", "1:2:3:4", "1e3", "90.1234", "inf",
                                  "nan", "0x10", "1:30:", " : ", "１２", "9" * 5000 + ":00:00"])
def test_malformed_times_are_refused_naming_the_field(text):
    with pytest.raises(InvalidOption, match="^end must be seconds"):
        parse_time("end", text)


def test_a_time_beyond_any_media_is_refused():
    with pytest.raises(InvalidOption, match="beyond 100 hours"):
        parse_time("start", "360001")


def test_no_fields_give_todays_conversion_titled_by_the_file_stem():
    assert from_fields({}, "Holiday 2026.final.mp4") == Options(title="Holiday 2026.final")
    assert from_fields({}, "") == Options()
    assert not Options().reencodes


def test_every_field_at_once():
    options = from_fields({"quality": "V0", "start": "0:10", "end": "75.5", "normalize": "on",
                           "title": " Talk ", "artist": "Ann Ö", "album": "Live",
                           "cover": "NONE"}, "a.mp4")
    assert options == Options(quality="v0", start=10.0, end=75.5, normalize=True,
                              title="Talk", artist="Ann Ö", album="Live", cover="none")
    assert options.reencodes
    assert Options.from_doc(options.to_doc()) == options


def test_empty_values_mean_not_given_as_a_browser_form_sends_them():
    assert from_fields({"quality": "", "start": " ", "title": "", "normalize": ""},
                       "clip.mov") == Options(title="clip")


@pytest.mark.parametrize("text", ["می\u200cخواهم", "👨\u200d👩\u200d👧 Family\u00a0Band",
                                  "\u200fשלום 2024", "Ünïcode — 夜"])
def test_tags_keep_joiners_marks_and_every_kind_of_space(text):
    assert from_fields({"title": text}, "a.mp4").title == text


@pytest.mark.parametrize("text", ["a\x00b", "a\x1b[31m", "a\u2028b", "evil\u202emp4.exe",
                                  "\ud800"])
def test_tags_refuse_controls_separators_and_overrides(text):
    with pytest.raises(InvalidOption, match="plain text without control characters"):
        from_fields({"artist": text}, "a.mp4")


# Every bidirectional formatting character that makes text display out of order: the
# embeddings (LRE, RLE, PDF), the overrides (LRO, RLO) and the isolates (LRI, RLI, FSI, PDI).
BIDI_CONTROLS = ["\u202a", "\u202b", "\u202c", "\u202d", "\u202e",
                 "\u2066", "\u2067", "\u2068", "\u2069"]


@pytest.mark.parametrize("tag", ["title", "artist", "album"])
@pytest.mark.parametrize("char", BIDI_CONTROLS, ids=lambda ch: f"U+{ord(ch):04X}")
def test_tags_refuse_every_bidi_embedding_override_and_isolate(tag, char):
    with pytest.raises(InvalidOption) as refused:
        from_fields({tag: f"invoice{char}4pm.exe"}, "a.mp4")
    assert str(refused.value) == f"{tag} must be plain text without control characters"


def test_a_start_at_zero_is_no_trim():
    assert from_fields({"start": "0", "end": "5"}, "a.mp4").start is None


@pytest.mark.parametrize("fields, message", [
    ({"quality": "999"}, "quality must be one of v0, v2, v5, 128, 192, 256, 320"),
    ({"quality": "320k"}, "quality must be one of"),
    ({"normalize": "maybe"}, "normalize must be true or false"),
    ({"cover": "yes"}, "cover must be auto"),
    ({"start": "10", "end": "10"}, "end (0:00:10) must be after start (0:00:10)"),
    ({"start": "1:00", "end": "0:30"}, "end (0:00:30) must be after start (0:01:00)"),
    ({"end": "0"}, "the trim keeps less than 0.1 s: end must be at least 0.1 s after the "
                   "beginning of the media"),
    ({"start": "5", "end": "5.099"}, "the trim keeps less than 0.1 s: end must be at least "
                                     "0.1 s after start"),
    ({"title": "a\nb"}, "title must be plain text without control characters"),
    ({"artist": "x" * 201}, "artist is longer than 200 characters"),
    ({"qualty": "320"}, "unknown field 'qualty'"),
])
def test_bad_options_are_refused_with_a_message_naming_the_field(fields, message):
    with pytest.raises(InvalidOption) as refused:
        from_fields(fields, "a.mp4")
    assert message in str(refused.value)


def test_a_job_recorded_before_options_existed_reads_as_the_defaults():
    assert Options.from_doc(None, "old.mp4") == Options(title="old")
    assert Options.from_doc({"quality": "v5", "unknown": 1}) == Options(quality="v5")


@pytest.mark.parametrize("seconds, text", [(0, "0:00:00"), (90.25, "0:01:30.250"),
                                           (3600, "1:00:00"), (43509.5, "12:05:09.500")])
def test_clock(seconds, text):
    assert clock(seconds) == text
