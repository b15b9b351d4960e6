"""Requests to addresses users give us (webhook endpoints), safe by construction (SSRF).

An endpoint URL must be http(s) and its host may reach no loopback, private (RFC 1918,
unique-local), link-local (169.254.0.0/16, the cloud metadata address among them), carrier-grade
NAT, multicast, unspecified, reserved or otherwise non-global address, unless an operator allows
a range (``allowed``: WEBHOOK_ALLOWED_NETWORKS). A cluster's pod and service addresses are in
private ranges, so they are refused with them.

The check runs at registration (``check_url``) and again at every request (``post``): the name
is resolved once, every address it resolves to is checked, and the connection goes to one of
those very addresses (no second lookup a rebinding DNS server could answer differently), with
the original Host header and, for https, the original name as SNI and for the certificate
check. Redirects are never followed; timeouts are short (connecting, each read, and the whole
exchange: connect + 2 × read); at most ``max_body`` bytes of the answer are read.
"""

import http.client
import ipaddress
import logging
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
# A resolver: host, port -> the addresses (strings); socket.getaddrinfo's answer by default.
Resolver = Callable[[str, int], list[str]]

CGNAT = ipaddress.ip_network("100.64.0.0/10")
NAT64 = ipaddress.ip_network("64:ff9b::/96")


log = logging.getLogger(__name__)

# A host name refused: the same words whether it does not resolve or resolves to an address
# that is not public.
NOT_PUBLIC = ("the host {host} does not resolve to public internet addresses only: webhooks "
              "may only reach those")


class Refused(ValueError):
    """The URL may not be requested; the message says why, in words for the person who gave
    it."""


def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system's resolver gives for ``host``."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise Refused(NOT_PUBLIC.format(host=host)) from None
    return list(dict.fromkeys(info[4][0] for info in infos))


def parse_networks(text: str) -> tuple[Network, ...]:
    """``10.1.0.0/16, 127.0.0.1/32`` → networks; ValueError naming a bad one."""
    networks = []
    for item in (part.strip() for part in text.split(",")):
        if item:
            networks.append(ipaddress.ip_network(item, strict=False))
    return tuple(networks)


def why_refused(address: Address) -> str | None:
    """Why ``address`` may not be reached (``loopback``, ``private``...), or None if public."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return why_refused(embedded)
    checks = (("unspecified", address.is_unspecified), ("loopback", address.is_loopback),
              ("link-local", address.is_link_local), ("multicast", address.is_multicast),
              ("carrier-grade NAT", address in CGNAT if address.version == 4 else False),
              ("private", address.is_private), ("reserved", address.is_reserved),
              ("not globally routable", not address.is_global))
    for name, hit in checks:
        if hit:
            return name
    return None


@dataclass(frozen=True)
class Target:
    """A checked URL: where to connect (``address``) and what to say (``host``, ``path``)."""

    scheme: str
    host: str
    port: int
    path: str
    address: str


def parse_url(url: str, max_length: int = 2000) -> tuple[str, str, int, str]:
    """(scheme, host, port, path with query) of an http(s) URL; Refused otherwise."""
    if not isinstance(url, str) or not url:
        raise Refused("url must be a non-empty string")
    if len(url) > max_length:
        raise Refused(f"url is longer than {max_length} characters")
    if any(not ch.isprintable() or ch.isspace() for ch in url):
        raise Refused("url may not contain spaces or control characters")
    if not url.isascii():  # an HTTP request line is ASCII: the URL is sent as written
        raise Refused("url must be ASCII: percent-encode other characters in its path and "
                      "query, and write an international host name in its xn-- form")
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise Refused(f"url is not valid: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise Refused("url must start with http:// or https://")
    if parts.username is not None or parts.password is not None:
        raise Refused("url may not carry a user name or password")
    host = parts.hostname
    if not host:
        raise Refused("url has no host")
    if parts.fragment:
        raise Refused("url may not have a #fragment")
    port = port or (443 if parts.scheme == "https" else 80)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return parts.scheme, host, port, path


def resolve(url: str, allowed: Iterable[Network] = (), resolver: Resolver | None = None,
            max_length: int = 2000) -> Target:
    """Check ``url`` and every address its host resolves to (once); the target to connect to.
    Refused (with the reason) when any address is not public and not in ``allowed``."""
    scheme, host, port, path = parse_url(url, max_length)
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [str(literal)]
    else:
        addresses = (resolver or system_resolver)(host, port)
        if not addresses:
            raise Refused(NOT_PUBLIC.format(host=host))
    allowed = tuple(allowed)
    for text in addresses:
        address = ipaddress.ip_address(text.split("%")[0])
        if any(address in network for network in allowed
               if network.version == address.version):
            continue
        reason = why_refused(address)
        if reason is not None and literal is None:
            # a name: what it resolves to, or that it resolves at all, is not told (a user
            # could map the cluster's names); the log has it for the operator
            log.info("webhook host refused", extra={"host": host, "address": str(address),
                                                    "reason": reason})
            raise Refused(NOT_PUBLIC.format(host=host))
        if reason is not None:
            raise Refused(f"the address {host} is {reason}: webhooks may only reach public "
                          "internet addresses")
    return Target(scheme, host, port, path, addresses[0])


def check_url(url: str, allowed: Iterable[Network] = (), resolver: Resolver | None = None,
              max_length: int = 2000) -> None:
    """Refused unless ``url`` may be registered (the same check as before every request)."""
    resolve(url, allowed, resolver, max_length)


@dataclass(frozen=True)
class Answer:
    """What became of one request: ``status`` (None: no answer), ``error`` (None: a 2xx)."""

    status: int | None
    duration: float
    error: str | None
    body: bytes = b""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class _PinnedHTTP(http.client.HTTPConnection):
    """An HTTP connection to ``address`` that says ``host`` (Host header)."""

    def __init__(self, host: str, port: int, address: str, connect_timeout: float,
                 read_timeout: float):
        super().__init__(host, port, timeout=connect_timeout)
        self._address = address
        self._read_timeout = read_timeout

    def _open(self) -> socket.socket:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        sock.settimeout(self._read_timeout)
        return sock

    def connect(self) -> None:
        self.sock = self._open()


class _PinnedHTTPS(_PinnedHTTP):
    """The same over TLS: SNI and the certificate's name are the original host's."""

    def __init__(self, *args, context: ssl.SSLContext, **kwargs):
        super().__init__(*args, **kwargs)
        self._context = context

    def connect(self) -> None:
        self.sock = self._context.wrap_socket(self._open(), server_hostname=self.host)


def _shut(conn: http.client.HTTPConnection) -> None:
    """End a connection that outlived its deadline (its reader gets an error at once)."""
    sock = conn.sock
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def post(url: str, body: bytes, headers: dict[str, str], *, allowed: Iterable[Network] = (),
         resolver: Resolver | None = None, connect_timeout: float = 5.0,
         read_timeout: float = 10.0, max_body: int = 4096, max_length: int = 2000,
         context: ssl.SSLContext | None = None) -> Answer:
    """POST ``body`` to ``url`` checked as ``resolve`` does, connecting to the checked address;
    never raises for the endpoint's faults: they are the Answer's ``error``."""
    started = time.monotonic()
    try:
        target = resolve(url, allowed, resolver, max_length)
    except Refused as exc:
        return Answer(None, time.monotonic() - started, f"refused: {exc}")
    if target.scheme == "https":
        conn: _PinnedHTTP = _PinnedHTTPS(target.host, target.port, target.address,
                                         connect_timeout, read_timeout,
                                         context=context or ssl.create_default_context())
    else:
        conn = _PinnedHTTP(target.host, target.port, target.address, connect_timeout,
                           read_timeout)
    # An endpoint that answers a byte at a time stays within the read timeout forever: the
    # whole exchange also has a deadline, past which its socket is shut down under it.
    deadline = threading.Timer(connect_timeout + 2 * read_timeout, _shut, args=(conn,))
    deadline.daemon = True
    deadline.start()
    try:
        conn.request("POST", target.path, body=body,
                     headers={**headers, "Content-Length": str(len(body))})
        response = conn.getresponse()
        content = response.read(max_body)
        status = response.status
    except (OSError, http.client.HTTPException, ValueError) as exc:  # (UnicodeError too)
        late = time.monotonic() - started >= connect_timeout + 2 * read_timeout
        reason = "TimeoutError: the endpoint took too long to answer" if late else (
            f"{type(exc).__name__}: {exc}"[:300] or type(exc).__name__)
        return Answer(None, time.monotonic() - started, reason)
    finally:
        deadline.cancel()
        conn.close()
    duration = time.monotonic() - started
    if 200 <= status < 300:
        return Answer(status, duration, None, content)
    if 300 <= status < 400:
        return Answer(status, duration, "redirects are not followed", content)
    return Answer(status, duration, f"answered {status}", content)
