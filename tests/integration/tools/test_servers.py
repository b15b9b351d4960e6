"""The test run's own MariaDB servers and RabbitMQ nodes run beside each other and beside the
machine's; stopping one stops nothing else, and it keeps its data across a restart."""

import time
import urllib.request

import pika
import pytest

from tools.processes import port_open

pytestmark = pytest.mark.integration

MACHINE_RABBITMQ_PORT = 5672
MACHINE_MARIADB_PORT = 3306


def _amqp_answers(node) -> bool:
    try:
        pika.BlockingConnection(pika.URLParameters(node.amqp_url())).close()
        return True
    except pika.exceptions.AMQPError:
        return False


def _ready_messages(node, queue: str) -> int:
    conn = pika.BlockingConnection(pika.URLParameters(node.amqp_url()))
    try:
        return conn.channel().queue_declare(queue, passive=True).method.message_count
    finally:
        conn.close()


def test_two_rabbitmq_nodes_beside_the_machines_stopping_one_leaves_the_others_running(
        rabbitmq_node, fresh_rabbitmq_node):
    machine_up = port_open("127.0.0.1", MACHINE_RABBITMQ_PORT)
    nodes = (rabbitmq_node, fresh_rabbitmq_node)
    assert rabbitmq_node.nodename != fresh_rabbitmq_node.nodename
    assert len({MACHINE_RABBITMQ_PORT, *(n.port for n in nodes)}) == 3
    conn = pika.BlockingConnection(pika.URLParameters(fresh_rabbitmq_node.amqp_url()))
    channel = conn.channel()
    channel.confirm_delivery()
    channel.queue_declare("kept", durable=True)
    channel.basic_publish("", "kept", b"survives", pika.BasicProperties(delivery_mode=2))
    conn.close()
    assert all(_amqp_answers(n) for n in nodes)

    fresh_rabbitmq_node.stop()
    assert not fresh_rabbitmq_node.alive
    assert not port_open("127.0.0.1", fresh_rabbitmq_node.port)
    assert _amqp_answers(rabbitmq_node)
    assert rabbitmq_node.ctl("eval", "node().").strip().strip("'") == rabbitmq_node.nodename
    assert port_open("127.0.0.1", MACHINE_RABBITMQ_PORT) == machine_up

    fresh_rabbitmq_node.start()
    assert fresh_rabbitmq_node.start_seconds is not None
    assert _ready_messages(fresh_rabbitmq_node, "kept") == 1


def test_queue_metrics_are_scraped_per_queue_from_the_node(rabbitmq_node, vhost):
    vhost_name = vhost.rsplit("/", 1)[1]
    conn = pika.BlockingConnection(pika.URLParameters(vhost))
    channel = conn.channel()
    channel.confirm_delivery()
    for body in (b"one", b"two"):
        channel.basic_publish("", "video", body, pika.BasicProperties(delivery_mode=2))
    conn.close()
    wanted = f'rabbitmq_queue_messages_ready{{vhost="{vhost_name}",queue="video"}} 2'
    deadline = time.monotonic() + 30  # the node refreshes its queue statistics every 5 s
    while True:
        with urllib.request.urlopen(rabbitmq_node.prometheus_url, timeout=10) as resp:
            metrics = resp.read().decode()
        if wanted in metrics.splitlines():
            break
        assert time.monotonic() < deadline, f"no `{wanted}` in the metrics"
        time.sleep(0.5)


def test_two_mariadb_servers_beside_the_machines_stopping_one_leaves_the_others_running(
        mariadb_server, fresh_mariadb_server):
    machine_up = port_open("127.0.0.1", MACHINE_MARIADB_PORT)
    servers = (mariadb_server, fresh_mariadb_server)
    assert len({MACHINE_MARIADB_PORT, *(s.port for s in servers)}) == 3
    with fresh_mariadb_server.connect(autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("CREATE DATABASE probe")
        cur.execute("CREATE TABLE probe.kept (id INT PRIMARY KEY)")
        cur.execute("INSERT INTO probe.kept VALUES (7)")
    with mariadb_server.connect() as conn, conn.cursor() as cur:
        cur.execute("SHOW DATABASES LIKE 'probe'")
        assert cur.fetchall() == ()  # a server of its own, not a view of the other

    fresh_mariadb_server.stop()
    assert not fresh_mariadb_server.alive
    assert not port_open("127.0.0.1", fresh_mariadb_server.port)
    with mariadb_server.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT 1")
        assert cur.fetchone() == (1,)
    assert port_open("127.0.0.1", MACHINE_MARIADB_PORT) == machine_up

    fresh_mariadb_server.start()
    with fresh_mariadb_server.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT id FROM probe.kept")
        assert cur.fetchall() == ((7,),)


def test_a_cluster_restores_nodes_stopped_or_killed_and_they_rejoin(rabbitmq_cluster):
    cluster = rabbitmq_cluster
    assert [n.nodename.split("@")[0].rsplit("_", 1)[1] for n in cluster.nodes] == ["1", "2", "3"]
    assert cluster.running_nodes() == set(cluster.nodenames)
    assert cluster.amqp_url("v").split(",") == [n.amqp_url("v") for n in cluster.nodes]
    cluster.nodes[1].stop()
    cluster.nodes[2].process.kill()
    assert cluster.running_nodes() == {cluster.nodenames[0]}
    assert cluster.ctl("eval", "node().").strip().strip("'") == cluster.nodenames[0]

    cluster.restore()  # what the fixture does after every test that used the cluster
    assert all(node.alive for node in cluster.nodes)
    assert cluster.running_nodes() == set(cluster.nodenames)
    assert all(_amqp_answers(node) for node in cluster.nodes)
