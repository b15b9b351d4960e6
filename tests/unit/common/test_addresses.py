"""The canonical form of an address (common.addresses), over generated spellings."""

import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.addresses import InvalidAddress, canonical, try_canonical

LOCAL = st.text("abcdefghijklmnopqrstuvwxyz0123456789._+-", min_size=1, max_size=20).filter(
    lambda s: not s.startswith(".") and not s.endswith(".") and ".." not in s)
LABEL = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=12)
ADDRESS = st.builds(lambda local, labels: f"{local}@{'.'.join(labels)}.com",
                    LOCAL, st.lists(LABEL, min_size=1, max_size=3))
INVISIBLE = st.sampled_from(["\u200b", "\u200c", "\u200d", "\u00ad", "\u2060", "\ufeff",
                             "\u202a", "\u202e", "\u2066", "\u2069", "\x00", "\x1b"])
CYRILLIC = {"a": "\u0430", "c": "\u0441", "e": "\u0435", "o": "\u043e", "p": "\u0440",
            "x": "\u0445", "y": "\u0443", "i": "\u0456"}


def full_width(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


@given(ADDRESS, st.data())
def test_spellings_of_one_address_have_one_canonical_form(address, data):
    flips = data.draw(st.lists(st.booleans(), min_size=len(address), max_size=len(address)))
    widths = data.draw(st.lists(st.booleans(), min_size=len(address), max_size=len(address)))
    spelled = "".join(full_width(c) if wide else (c.upper() if up else c)
                      for c, up, wide in zip(address, flips, widths, strict=True))
    padding = data.draw(st.sampled_from(["", " ", "\t", " \n"]))
    assert canonical(padding + spelled + padding) == canonical(address) == address


@given(ADDRESS, INVISIBLE, st.data())
def test_an_invisible_character_anywhere_is_refused(address, invisible, data):
    at = data.draw(st.integers(min_value=1, max_value=len(address) - 1))
    with pytest.raises(InvalidAddress, match="invalid email"):
        canonical(address[:at] + invisible + address[at:])


@given(ADDRESS, st.data())
def test_a_look_alike_letter_from_another_alphabet_is_refused(address, data):
    local, domain = address.split("@")
    part = data.draw(st.sampled_from(["local", "domain"]))
    text = local if part == "local" else domain.split(".")[0]
    latin = [i for i, c in enumerate(text) if c.isalpha()]
    swappable = [i for i in latin if text[i] in CYRILLIC]
    if not swappable or len(latin) < 2:
        return  # nothing Latin would stay beside it: an all-Cyrillic label is a real one
    i = data.draw(st.sampled_from(swappable))
    forged = text[:i] + CYRILLIC[text[i]] + text[i + 1:]
    spoof = (f"{forged}@{domain}" if part == "local"
             else f"{local}@{forged}.{domain.split('.', 1)[1]}")
    with pytest.raises(InvalidAddress, match="alphabets"):
        canonical(spoof)


@settings(suppress_health_check=[HealthCheck.filter_too_much])
@given(st.text(min_size=1, max_size=40).map(lambda s: s + "@example.com"))
def test_the_canonical_form_is_a_fixed_point(text):
    form = try_canonical(text)
    if form is None:
        return
    assert canonical(form) == form
    assert unicodedata.normalize("NFKC", form) == form and form.strip() == form
    assert form.lower() == form


@pytest.mark.parametrize("address, form", [
    (" Dev@Example.COM ", "dev@example.com"),
    ("ｄｅｖ@ｅｘａｍｐｌｅ.ｃｏｍ", "dev@example.com"),
    ("\ufb01le@example.com", "file@example.com"),  # the "fi" ligature
    ("dev@xn--exmple-cua.com", "dev@exämple.com"),  # one domain, in either of its spellings
    ("Straße@Faß.de", "straße@faß.de"),  # not casefolded: faß.de and fass.de differ
    ("пример@пример.рф", "пример@пример.рф"),  # one alphabet: fine
    ("山田@例え.jp", "山田@例え.jp"),  # Han with kana, as Japanese is written
])
def test_known_spellings(address, form):
    assert canonical(address) == form


@pytest.mark.parametrize("address", [
    "dev@exаmple.com",  # Cyrillic а
    "dеv@example.com",  # Cyrillic е
    "dev@example.com\u200b", "de\u00adv@example.com", "dev\u202e@example.com",
    "de v@example.com", "dev@example.com.", "", 42, None,
])
def test_refused(address):
    with pytest.raises(InvalidAddress, match="invalid email"):
        canonical(address)
