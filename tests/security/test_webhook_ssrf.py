"""Server-side request forgery through webhooks: an endpoint URL aimed at this machine, the
cluster's network or the cloud's metadata service is refused at registration (the session's
stack runs with the default settings: no WEBHOOK_ALLOWED_NETWORKS); a name that resolves to a
public address when registered and to loopback when delivered (DNS rebinding) is refused at
delivery, before connecting; a redirect is never followed.

There is no DNS server here to control: the rebinding tests give notification's delivery a
stand-in for DNS (``resolver=``), and everything else (MongoDB, the receiver, the sockets) is
real."""

import socket
import threading
import time
import uuid

import pytest
import requests

from common import egress, messages
from common.consumer import Delivery
from common.settings import ConsumerSettings, MessagingSettings, MongoSettings, SmtpSettings
from common.store import Store
from common.webhooks import Webhooks, WebhookSettings
from notification.config import NotificationConfig
from notification.webhooks import DeliveryHandler
from tests.e2e.receiver import Receiver

pytestmark = pytest.mark.security


@pytest.mark.parametrize("url, words", [
    ("http://127.0.0.1:8080/hook", "127.0.0.1 is loopback"),
    ("http://127.1/hook", "the host 127.1 does not resolve to public"),  # read as a name
    ("http://10.0.0.5/hook", "10.0.0.5 is private"),
    ("http://10.255.255.255:9000/", "private"),
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is link-local"),
    ("http://[::1]:5000/", "::1 is loopback"),
    ("http://[::ffff:127.0.0.1]/", "loopback"),
    # a name: refused without saying what it resolves to (nor whether it resolves)
    ("http://localhost:5000/users", "the host localhost does not resolve to public internet "
                                    "addresses only"),
    ("http://vm/hook", "the host vm does not resolve to public"),  # a name in /etc/hosts
    ("http://no-such-host.invalid/hook", "the host no-such-host.invalid does not resolve to "
                                         "public"),
    ("http://93.184.216.34/h\u00e9", "url must be ASCII"),  # not sendable: refused, never sent
    ("http://192.168.0.1/", "private"),
    ("http://100.64.1.1/", "carrier-grade NAT"),
    ("http://0.0.0.0:8080/", "unspecified"),
    ("http://224.0.0.251/", "multicast"),
    ("file:///etc/passwd", "http:// or https://"),
    ("gopher://127.0.0.1:25/", "http:// or https://"),
])
def test_internal_targets_are_refused_at_registration_with_a_clear_422(stack, url, words):
    _, jwt = stack.user()
    resp = requests.post(f"{stack.gateway_url}/webhooks", json={"url": url},
                         headers={"Authorization": f"Bearer {jwt}"}, timeout=10)
    assert resp.status_code == 422, resp.text
    assert resp.headers["Content-Type"] == "application/json"
    assert resp.json()["error"].startswith("url refused: ")
    assert words in resp.json()["error"]
    listed = requests.get(f"{stack.gateway_url}/webhooks",
                          headers={"Authorization": f"Bearer {jwt}"}, timeout=10).json()
    assert listed == {"webhooks": []}


def rebinding_dns(*answers: list[str]):
    """A stand-in for a DNS server the attacker controls: the n-th question gets the n-th
    answer (the last one from then on)."""
    asked = []

    def resolve(host: str, port: int) -> list[str]:
        asked.append(host)
        return answers[min(len(asked), len(answers)) - 1]

    resolve.asked = asked
    return resolve


class Recorder:
    """Publishes nothing; records what would have been published (the retries)."""

    def __init__(self):
        self.published = []

    def publish(self, queue, body, headers=None, expiration_ms=None):
        self.published.append((queue, headers, expiration_ms))


@pytest.fixture
def receiver():
    made = Receiver()
    yield made
    made.close()


@pytest.fixture
def webhook_store(mongodb_uri):
    settings = MongoSettings(mongodb_uri, f"mp3test_{uuid.uuid4().hex[:8]}")
    store = Store(settings)
    yield store
    store.client.drop_database(settings.db)
    store.close()


def _handler(store, allowed: str, resolver) -> DeliveryHandler:
    config = NotificationConfig(
        smtp=SmtpSettings("127.0.0.1", 9, False, "", "", "mp3converter@localhost", 1.0),
        public_url="http://gw.example", auth_url="http://127.0.0.1:9", auth_timeout=1.0,
        mongo=MongoSettings("mongodb://unused", "unused"),
        messaging=MessagingSettings("amqp://unused", 3, 1.0, 5.0),
        consumer=ConsumerSettings(1.0, "/tmp/unused-hb", 60.0), log_level="WARNING",
        webhooks=WebhookSettings(allowed_networks=egress.parse_networks(allowed),
                                 retry_delays=(1.0,), connect_timeout=2, read_timeout=2))
    return DeliveryHandler(config, store, resolver=resolver)


def _deliver(handler: DeliveryHandler, endpoint: dict) -> Recorder:
    message = messages.WebhookDelivery(webhook_id=f"msg_{uuid.uuid4().hex}",
                                       endpoint_id=str(endpoint["_id"]), owner=endpoint["owner"],
                                       type="job.done", payload='{"type": "job.done"}')
    recorder = Recorder()
    handler.handle(Delivery(body=messages.encode(message), headers={}, redelivered=False,
                            attempt=1, publisher=recorder))
    return recorder


def test_a_name_that_later_resolves_to_loopback_is_refused_at_delivery(
        webhook_store, receiver):
    # public when it was registered...
    dns = rebinding_dns(["93.184.216.34"], ["127.0.0.1"])
    url = f"http://hooks.example.test:{receiver.server.server_address[1]}/in"
    egress.check_url(url, resolver=dns)
    endpoint = Webhooks(webhook_store).create("account-1", url, ["job.done"])
    # ... loopback when delivered: refused before any connection, recorded, retried later
    recorder = _deliver(_handler(webhook_store, "", dns), endpoint)
    assert receiver.received == []
    assert dns.asked == ["hooks.example.test", "hooks.example.test"]  # once per check
    [attempt] = Webhooks(webhook_store).recent(endpoint["_id"])
    assert attempt["status"] is None and not attempt["ok"]
    assert attempt["error"] == ("refused: the host hooks.example.test does not resolve to "
                                "public internet addresses only: webhooks may only reach those")
    assert [queue for queue, _, _ in recorder.published] == ["webhooks.deliver.delay.1"]


def test_the_connection_goes_to_the_address_checked_with_the_original_host(
        webhook_store, receiver):
    """One lookup per delivery: the address checked is the one connected to (a second lookup
    could be answered otherwise), and the receiver sees the name it was registered with."""
    port = receiver.server.server_address[1]
    dns = rebinding_dns(["127.0.0.1"], ["10.9.9.9"])  # a second lookup would be refused
    endpoint = Webhooks(webhook_store).create("account-1", f"http://hooks.example.test:{port}/in",
                                              ["job.done"])
    recorder = _deliver(_handler(webhook_store, "127.0.0.1/32", dns), endpoint)
    [got] = receiver.received
    assert got.headers["host"] == f"hooks.example.test:{port}"
    assert dns.asked == ["hooks.example.test"]
    assert recorder.published == []


def test_a_redirect_to_loopback_is_not_followed(webhook_store, receiver):
    """The endpoint (allowed here) answers 302 to an internal address: nothing follows it."""
    inside = receiver.url("/internal-admin")

    def redirect(_got):
        return 302

    receiver.behaviour["/out"] = redirect
    original = receiver.server.RequestHandlerClass.send_response

    def send_response(self, code, message=None):
        original(self, code, message)
        if code == 302:
            self.send_header("Location", inside)

    receiver.server.RequestHandlerClass.send_response = send_response
    endpoint = Webhooks(webhook_store).create("account-1", receiver.url("/out"), ["job.done"])
    recorder = _deliver(_handler(webhook_store, "127.0.0.1/32", None), endpoint)
    assert [got.path for got in receiver.received] == ["/out"]
    [attempt] = Webhooks(webhook_store).recent(endpoint["_id"])
    assert (attempt["status"], attempt["ok"], attempt["error"]) == (
        302, False, "redirects are not followed")
    assert len(recorder.published) == 1  # a failed attempt, retried later like any other


def test_an_endpoint_dripping_its_answer_is_cut_off_at_the_deadline():
    """A byte every half second never trips the read timeout: the exchange's deadline ends it
    (and with it, the hold on notification's delivery loop)."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def drip():
        conn, _ = server.accept()
        conn.recv(65536)
        try:
            for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 1000:
                if stop.is_set():
                    break
                conn.send(bytes([byte]))
                time.sleep(0.5)
        except OSError:
            pass
        finally:
            conn.close()

    thread = threading.Thread(target=drip, daemon=True)
    thread.start()
    try:
        started = time.monotonic()
        answer = egress.post(f"http://127.0.0.1:{server.getsockname()[1]}/", b"{}", {},
                             allowed=egress.parse_networks("127.0.0.1/32"),
                             connect_timeout=1, read_timeout=1)
        took = time.monotonic() - started
    finally:
        stop.set()
        server.close()
    assert answer.status is None and not answer.ok
    assert answer.error == "TimeoutError: the endpoint took too long to answer"
    assert 2.9 <= took < 5, took
