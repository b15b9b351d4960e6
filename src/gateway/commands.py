"""Operator click commands: ``flask --app gateway sweep | dlq-list | dlq-redrive``."""

import json

import click
from flask import current_app
from flask.cli import with_appcontext

from common import topology
from common.broker import Publisher
from common.store import Store

QUEUE_CHOICE = click.Choice(list(topology.WORK_QUEUES))


@click.command("sweep")
@with_appcontext
def sweep_command():
    """Re-queue orphaned uploads and jobs whose converter died."""
    from gateway.maintenance import sweep

    cfg = current_app.config["GATEWAY"]
    store = Store(cfg.mongo)
    publisher = Publisher(cfg.messaging.rabbitmq_url, cfg.messaging.max_attempts)
    try:
        click.echo(json.dumps(sweep(store, publisher, cfg)))
    finally:
        publisher.close()
        store.close()


@click.command("dlq-list")
@with_appcontext
@click.argument("queue", type=QUEUE_CHOICE, default=topology.VIDEO)
def dlq_list_command(queue: str):
    """Print the dead letters of QUEUE (video or mp3), one JSON object per line."""
    from gateway.maintenance import dead_letters

    cfg = current_app.config["GATEWAY"].messaging
    for entry in dead_letters(cfg.rabbitmq_url, cfg.max_attempts, queue):
        click.echo(json.dumps(entry))


@click.command("dlq-redrive")
@with_appcontext
@click.argument("queue", type=QUEUE_CHOICE, default=topology.VIDEO)
def dlq_redrive_command(queue: str):
    """Move the dead letters of QUEUE back onto it for another try."""
    from gateway.maintenance import redrive

    cfg = current_app.config["GATEWAY"]
    store = Store(cfg.mongo)
    try:
        moved = redrive(cfg.messaging.rabbitmq_url, cfg.messaging.max_attempts, queue, store)
    finally:
        store.close()
    click.echo(f"moved {moved} message(s) back to {queue}")


def init_app(app) -> None:
    """Register the commands."""
    for command in (sweep_command, dlq_list_command, dlq_redrive_command):
        app.cli.add_command(command)
