"""common.egress: which URLs and addresses a webhook may reach (no network: resolvers are
stand-ins for DNS)."""

import ipaddress

import pytest

from common import egress


def dns(*answers: str):
    """A stand-in for DNS: every name resolves to ``answers``; the questions are recorded."""
    asked = []

    def resolve(host: str, port: int) -> list[str]:
        asked.append((host, port))
        return list(answers)

    resolve.asked = asked
    return resolve


@pytest.mark.parametrize("address, reason", [
    ("127.0.0.1", "loopback"), ("127.8.9.10", "loopback"), ("::1", "loopback"),
    ("10.0.0.1", "private"), ("172.16.5.4", "private"), ("192.168.1.1", "private"),
    ("fd00::1", "private"), ("169.254.169.254", "link-local"), ("fe80::1", "link-local"),
    ("100.64.0.1", "carrier-grade NAT"), ("224.0.0.1", "multicast"), ("ff02::1", "multicast"),
    ("0.0.0.0", "unspecified"), ("::", "unspecified"), ("::ffff:127.0.0.1", "loopback"),
    ("::ffff:169.254.169.254", "link-local"), ("64:ff9b::a00:1", "private"),
    ("2002:7f00:1::", "loopback"), ("240.0.0.1", "private"), ("192.0.2.1", "private"),
])
def test_non_public_addresses_are_refused_with_their_kind(address, reason):
    assert egress.why_refused(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_pass(address):
    assert egress.why_refused(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize("url, words", [
    ("ftp://93.184.216.34/x", "http:// or https://"), ("file:///etc/passwd", "http"),
    ("gopher://93.184.216.34", "http"), ("http://user:pw@93.184.216.34/", "password"),
    ("http:///nohost", "no host"), ("http://93.184.216.34/a b", "spaces"),
    ("http://93.184.216.34/#frag", "fragment"), ("", "non-empty"),
    ("http://93.184.216.34:99999/", "not valid"),
    ("http://93.184.216.34/" + "a" * 3000, "longer than 2000"),
])
def test_malformed_urls_are_refused_saying_why(url, words):
    with pytest.raises(egress.Refused, match=words):
        egress.check_url(url, resolver=dns("93.184.216.34"))


def test_every_address_of_a_name_is_checked_once():
    resolver = dns("93.184.216.34", "10.0.0.7")
    with pytest.raises(egress.Refused) as refused:
        egress.check_url("https://hooks.example.test/in", resolver=resolver)
    # refused for its private address, which the message does not show
    assert str(refused.value) == ("the host hooks.example.test does not resolve to public "
                                  "internet addresses only: webhooks may only reach those")
    assert resolver.asked == [("hooks.example.test", 443)]


def test_an_allowed_range_lets_its_addresses_through_and_no_others():
    allowed = egress.parse_networks("127.0.0.1/32, 10.1.0.0/16")
    target = egress.resolve("http://receiver.test:8000/a?b=1", allowed, dns("127.0.0.1"))
    assert (target.host, target.port, target.path, target.address) == (
        "receiver.test", 8000, "/a?b=1", "127.0.0.1")
    egress.check_url("http://10.1.2.3/", allowed)
    with pytest.raises(egress.Refused):
        egress.check_url("http://127.0.0.2/", allowed)
    with pytest.raises(egress.Refused):
        egress.check_url("http://10.2.0.1/", allowed)


def test_a_bad_allowed_network_is_a_value_error():
    with pytest.raises(ValueError):
        egress.parse_networks("10.0.0.0/33")


def test_a_refused_post_connects_nowhere_and_says_why():
    answer = egress.post("http://metadata.test/latest", b"{}", {}, resolver=dns("169.254.169.254"))
    assert answer.status is None and not answer.ok
    assert answer.error.startswith("refused: the host metadata.test does not resolve to public")
    assert "169.254" not in answer.error


def test_a_name_that_does_not_resolve_is_refused_in_the_same_words_as_a_private_one():
    """Whether an internal name exists, and what it resolves to, is not told."""
    with pytest.raises(egress.Refused) as missing:
        egress.check_url("http://no-such-host.invalid/in")
    with pytest.raises(egress.Refused) as private:
        egress.check_url("http://no-such-host.invalid/in", resolver=dns("10.0.0.7"))
    assert str(missing.value) == str(private.value)


def test_a_url_that_is_not_ascii_is_refused_and_never_crashes_a_delivery():
    for url in ("http://93.184.216.34/h\u00e9", "http://93.184.216.34/?q=\u00e9",
                "http://b\u00fccher.example/"):
        with pytest.raises(egress.Refused, match="url must be ASCII"):
            egress.check_url(url)
        answer = egress.post(url, b"{}", {})  # a URL registered before this check
        assert answer.status is None and answer.error.startswith("refused: url must be ASCII")
