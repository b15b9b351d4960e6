"""The upload's conversion options: each field parsed once, combinations refused, defaults
kept."""

import pytest

from common.options import (
    MAX_FIELD_BYTES,
    QUALITIES,
    InvalidOption,
    Options,
    clock,
    combine,
    from_fields,
    parse_field,
    parse_time,
)


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


@pytest.mark.parametrize("name, sent, value", [
    ("quality", b" V0 ", "v0"), ("start", b"1:30", 90.0), ("normalize", b"yes", True),
    ("title", "Ünïcode".encode(), "Ünïcode"), ("title", b"", None), ("cover", b"  ", None),
    ("album", b"a" * 200, "a" * 200),
])
def test_a_field_as_sent_is_parsed_once(name, sent, value):
    assert parse_field(name, sent) == value
    assert parse_field(name, sent.decode()) == value  # the same as text


@pytest.mark.parametrize("name, sent, message", [
    ("tags", b"x" * 5000, "unknown field 'tags'"),  # the name first, whatever the value
    ("title", b"x" * (MAX_FIELD_BYTES + 1), f"title is longer than {MAX_FIELD_BYTES} bytes"),
    ("title", b"\xff" * (MAX_FIELD_BYTES + 1), "title is longer than"),  # before its encoding
    ("title", b"\xff\xfe", "title must be UTF-8 text"),
    ("title", "\u00e9".encode("utf-8")[:1], "title must be UTF-8 text"),
    ("end", b"9" * 20, "end must be seconds"),
    ("artist", "a\u202eb".encode(), "artist must be plain text without control characters"),
])
def test_a_field_as_sent_is_refused_naming_it(name, sent, message):
    with pytest.raises(InvalidOption) as refused:
        parse_field(name, sent)
    assert message in str(refused.value)


def test_parsed_fields_are_combined_and_checked_together():
    parsed = {name: parse_field(name, sent) for name, sent in
              (("start", b"0"), ("end", b"5"), ("title", b""), ("quality", b"v5"))}
    assert combine(parsed, "talk.mp4") == Options(quality="v5", end=5.0, title="talk")
    with pytest.raises(InvalidOption, match=r"end \(0:00:03\) must be after start"):
        combine({"start": 9.0, "end": 3.0}, "a.mp4")


def test_each_quality_has_its_label_and_its_encoder_arguments_in_one_table():
    assert list(QUALITIES) == ["v0", "v2", "v5", "128", "192", "256", "320"]
    for key, quality in QUALITIES.items():
        flag, value = quality.ffmpeg_args
        if key.startswith("v"):
            assert (flag, value) == ("-q:a", key[1:]) and quality.label.startswith("VBR")
        else:
            assert (flag, value) == ("-b:a", f"{key}k") and quality.label == f"CBR {key} kbit/s"
