"""Signed download tokens: valid only for their file, owner and lifetime, and untampered."""

import base64
import hashlib
import hmac
import time

import pytest

from gateway.security import check_download, sign_download

SECRET = "download-secret-for-tests-0123456789"
FID = "65f0c0ffee0000000000abcd"
OWNER = "owner@example.com"


def test_fresh_token_is_accepted_until_it_expires():
    token, expires = sign_download(SECRET, FID, OWNER, 60)
    assert int(time.time()) + 59 <= expires <= int(time.time()) + 60
    assert check_download(SECRET, token, FID, OWNER)


def test_token_names_neither_the_file_nor_the_owner():
    token, expires = sign_download(SECRET, FID, OWNER, 60)
    assert token.split(".")[0] == str(expires)
    assert OWNER not in token and FID not in token


def test_expired_token_is_rejected():
    token, _ = sign_download(SECRET, FID, OWNER, -1)
    assert not check_download(SECRET, token, FID, OWNER)


@pytest.mark.parametrize("secret, fid, owner", [
    (SECRET, "65f0c0ffee0000000000abce", OWNER),
    (SECRET, FID, "someone@example.com"),
    ("another secret entirely, also long", FID, OWNER),
], ids=["wrong fid", "wrong owner", "wrong secret"])
def test_token_for_something_else_is_rejected(secret, fid, owner):
    token, _ = sign_download(SECRET, FID, OWNER, 60)
    assert not check_download(secret, token, fid, owner)


def _tamper_signature(token: str) -> str:
    expires, signature = token.split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    return f"{expires}.{flipped}"


def _extend_expiry(token: str) -> str:
    expires, signature = token.split(".")
    return f"{int(expires) + 3600}.{signature}"


@pytest.mark.parametrize("tamper", [
    _tamper_signature, _extend_expiry, lambda t: t.split(".")[1], lambda t: "",
    lambda t: "abc." + t.split(".")[1], lambda t: t + "x", lambda t: "-1." + t.split(".")[1],
], ids=["signature", "expiry", "no expiry", "empty", "text expiry", "suffix", "negative"])
def test_tampered_token_is_rejected(tamper):
    token, _ = sign_download(SECRET, FID, OWNER, 600)
    assert not check_download(SECRET, tamper(token), FID, OWNER)


@pytest.mark.parametrize("token", [
    "²." + "a" * 43, "9" * 5000 + ".abc", f"{int(time.time()) + 60}.é", "٣٣٣٣٣٣٣٣٣٣.abc",
], ids=["unicode digit", "huge number", "non-ascii signature", "arabic digits"])
def test_odd_tokens_are_rejected_without_raising(token):
    assert check_download(SECRET, token, FID, OWNER) is False



def _previous_format(secret: str, fid: str, owner: str, expires: int) -> str:
    """A link token as mp3converter 0.1.0 signed it (accepted until January 2027)."""
    mac = hmac.new(secret.encode(), f"{fid}\n{owner}\n{expires}".encode(), hashlib.sha256)
    return f"{expires}." + base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()


def test_a_link_of_the_previous_format_works_until_it_expires():
    fresh = _previous_format(SECRET, FID, OWNER, int(time.time()) + 60)
    assert check_download(SECRET, fresh, FID, OWNER)
    assert not check_download(SECRET, _previous_format(SECRET, FID, OWNER, int(time.time()) - 1),
                              FID, OWNER)


@pytest.mark.parametrize("secret, fid, owner", [
    (SECRET, "65f0c0ffee0000000000abce", OWNER),
    (SECRET, FID, "someone@example.com"),
    ("another secret entirely, also long", FID, OWNER),
], ids=["wrong fid", "wrong owner", "wrong secret"])
def test_a_link_of_the_previous_format_for_something_else_is_rejected(secret, fid, owner):
    token = _previous_format(SECRET, FID, OWNER, int(time.time()) + 60)
    assert not check_download(secret, token, fid, owner)
