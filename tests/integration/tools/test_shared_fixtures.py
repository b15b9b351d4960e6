"""The shared fixtures hand out real, working, isolated servers."""

import uuid

import gridfs
import MySQLdb
import pika
import pytest
from pymongo import MongoClient

pytestmark = pytest.mark.integration


def test_mysql_db_is_a_fresh_database_the_given_user_can_write(mysql_db):
    conn = MySQLdb.connect(
        host=mysql_db["MYSQL_HOST"],
        port=int(mysql_db["MYSQL_PORT"]),
        user=mysql_db["MYSQL_USER"],
        passwd=mysql_db["MYSQL_PASSWORD"],
        db=mysql_db["MYSQL_DB"],
    )
    with conn, conn.cursor() as cur:
        cur.execute("SELECT DATABASE()")
        assert cur.fetchone()[0].startswith("mp3test_")
        cur.execute("CREATE TABLE probe (id INT PRIMARY KEY)")
        cur.execute("INSERT INTO probe VALUES (1)")
        cur.execute("SELECT COUNT(*) FROM probe")
        assert cur.fetchone()[0] == 1
        cur.execute("DROP TABLE probe")


def test_rabbitmq_url_is_a_working_private_vhost(rabbitmq_url):
    assert not rabbitmq_url.endswith("/%2F")
    queue = f"probe-{uuid.uuid4().hex}"
    conn = pika.BlockingConnection(pika.URLParameters(rabbitmq_url))
    try:
        channel = conn.channel()
        channel.queue_declare(queue, auto_delete=True)
        channel.basic_publish("", queue, b"ping")
        method, _props, body = channel.basic_get(queue, auto_ack=True)
        assert body == b"ping"
    finally:
        conn.close()


def test_mongodb_uri_serves_gridfs(mongodb_uri):
    client = MongoClient(mongodb_uri, serverSelectionTimeoutMS=5000)
    try:
        fs = gridfs.GridFS(client["probe"], collection="videos")
        fid = fs.put(b"x" * 300_000, filename="a.mp4")
        assert fs.get(fid).read() == b"x" * 300_000
    finally:
        client.close()
