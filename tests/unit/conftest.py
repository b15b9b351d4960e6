"""The unit tier uses no servers: no MariaDB, RabbitMQ, MongoDB or SMTP sink, so it runs in
seconds anywhere. Tests that need them live in tests/integration.

Two checks keep it so:

- a unit test asking for a fixture that starts or reaches a server fails before the fixture
  runs (this also covers clients that connect from C, such as MySQLdb, which the second check
  cannot see);
- a unit test whose code opens a TCP connection fails, unless the port is one this process bound
  itself: a listener a test runs (an in-process SMTP server) or a port a test reserved with
  ``free_port()`` to find nothing there. The connection is refused as a closed port would refuse
  it, and the test fails at teardown even if the code under test swallowed the error. The ports
  are remembered for the whole run: a client a test closed may still try its port once more from
  its own thread (pymongo's monitor) while the next test runs.
"""

import socket

import pytest

SERVER_FIXTURES = frozenset({
    "mariadb_server", "fresh_mariadb_server", "mysql_db",
    "rabbitmq_node", "fresh_rabbitmq_node", "rabbitmq_cluster", "rabbitmq_url", "module_vhost",
    "vhost",
    "mongodb_server", "mongodb_uri", "mailsink", "service_env", "stack", "stack_factory",
})


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Refuse server fixtures before anything starts them."""
    used = sorted(SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ())))
    if used:
        pytest.fail(f"unit tests use no servers, but this one asks for {', '.join(used)}: "
                    "it belongs in tests/integration", pytrace=False)


def _tcp(family) -> bool:
    return family in (socket.AF_INET, socket.AF_INET6)


_BOUND: set[int] = set()  # TCP ports this process bound, in any unit test so far


@pytest.fixture(autouse=True)
def no_server_connections(monkeypatch):
    """Fail the test if it connected over TCP to a port this process did not bind itself."""
    bound = _BOUND
    refused: list[str] = []
    real_bind, real_connect, real_connect_ex = (
        socket.socket.bind, socket.socket.connect, socket.socket.connect_ex)

    def bind(sock, address):
        real_bind(sock, address)
        if _tcp(sock.family):
            bound.add(sock.getsockname()[1])

    def allowed(sock, address) -> bool:
        if not _tcp(sock.family):
            return True  # Unix sockets, netlink: nothing of another process's server
        host, port = address[0], address[1]
        if port in bound and host in ("127.0.0.1", "::1", "localhost"):
            return True
        refused.append(f"{host}:{port}")
        return False

    def connect(sock, address):
        if not allowed(sock, address):
            raise ConnectionRefusedError(111, f"unit tests reach no servers ({address})")
        return real_connect(sock, address)

    def connect_ex(sock, address):
        if not allowed(sock, address):
            return 111  # ECONNREFUSED
        return real_connect_ex(sock, address)

    monkeypatch.setattr(socket.socket, "bind", bind)
    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    yield
    if refused:
        pytest.fail(f"unit tests reach no servers, but this one connected to "
                    f"{', '.join(sorted(set(refused)))}: it belongs in tests/integration",
                    pytrace=False)
