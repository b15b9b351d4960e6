"""Broker connection parameters: every node of RABBITMQ_URL, in random order."""

from common.broker import parameters

CLUSTER = ",".join(f"amqp://u:p@rabbitmq-{i}:5672/%2F" for i in range(3))


def test_one_url_gives_one_set_of_parameters_with_bounded_timeouts():
    [params] = parameters("amqp://u:p@mq:5673/v?heartbeat=7", heartbeat=30)
    assert (params.host, params.port, params.virtual_host) == ("mq", 5673, "v")
    assert params.heartbeat == 7  # the URL's own wins
    assert params.socket_timeout == 5 and params.connection_attempts == 1


def test_every_node_is_tried_and_the_order_changes_from_one_connection_to_the_next():
    orders = {tuple(p.host for p in parameters(CLUSTER, heartbeat=30)) for _ in range(200)}
    assert all(sorted(order) == ["rabbitmq-0", "rabbitmq-1", "rabbitmq-2"] for order in orders)
    assert len(orders) == 6  # every node comes first now and then
    assert all(p.heartbeat == 30 and p.virtual_host == "/" for p in parameters(CLUSTER, 30))


def test_spaces_around_the_commas_are_ignored():
    hosts = {p.host for p in parameters(" amqp://a/%2F , amqp://b/%2F ")}
    assert hosts == {"a", "b"}
