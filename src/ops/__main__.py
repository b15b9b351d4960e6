"""``python -m ops sweep | dlq-list [QUEUE] | dlq-redrive [QUEUE] | usage``."""

import json

import click

from common import log as jsonlog
from common import topology
from common.broker import Publisher
from common.jobs import Jobs
from common.settings import load_or_exit
from common.store import Store
from common.units import size
from ops.config import OpsConfig

QUEUE_CHOICE = click.Choice(list(topology.WORK_QUEUES))


@click.group()
@click.pass_context
def cli(ctx):
    """Operator commands of mp3converter."""
    config = load_or_exit(OpsConfig.from_env, "ops")
    jsonlog.configure("ops", config.log_level)
    store = Store(config.mongo)
    ctx.call_on_close(store.close)
    ctx.obj = {"config": config, "jobs": Jobs(store, config.lifecycle)}


def _publisher(ctx) -> Publisher:
    messaging = ctx.obj["config"].messaging
    publisher = Publisher(messaging.rabbitmq_url, messaging.max_attempts)
    ctx.call_on_close(publisher.close)
    return publisher


@cli.command("sweep")
@click.pass_context
def sweep_command(ctx):
    """Recover lost and stuck jobs, expire MP3s, remove orphans and deleted accounts' files."""
    from ops.sweep import sweep

    click.echo(json.dumps(sweep(ctx.obj["jobs"], _publisher(ctx), ctx.obj["config"])))


@cli.command("dlq-list")
@click.argument("queue", type=QUEUE_CHOICE, default=topology.VIDEO)
@click.pass_context
def dlq_list_command(ctx, queue: str):
    """Print the dead letters of QUEUE (video or mp3), one JSON object per line."""
    from ops.dlq import dead_letters

    messaging = ctx.obj["config"].messaging
    for entry in dead_letters(messaging.rabbitmq_url, messaging.max_attempts, queue):
        click.echo(json.dumps(entry))


@cli.command("dlq-redrive")
@click.argument("queue", type=QUEUE_CHOICE, default=topology.VIDEO)
@click.pass_context
def dlq_redrive_command(ctx, queue: str):
    """Try the jobs of QUEUE's dead letters again (dropping those with nothing to retry)."""
    from ops.dlq import redrive

    messaging = ctx.obj["config"].messaging
    counts = redrive(messaging.rabbitmq_url, messaging.max_attempts, queue, ctx.obj["jobs"],
                     _publisher(ctx))
    click.echo(f"moved {counts['redriven']} message(s) back to {queue}; dropped "
               f"{counts['dropped']} with nothing left to retry")


@cli.command("usage")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per user.")
@click.pass_context
def usage_command(ctx, as_json: bool):
    """Users by storage used, largest first."""
    jobs = ctx.obj["jobs"]
    rows = [(owner, jobs.usage(owner)) for owner in jobs.owners()]
    rows.sort(key=lambda row: row[1].bytes, reverse=True)
    for owner, usage in rows:
        if as_json:
            click.echo(json.dumps({"owner": owner, "bytes": usage.bytes,
                                   "active_jobs": usage.active_jobs, "jobs": usage.counts}))
        else:
            click.echo(f"{size(usage.bytes):>10}  {usage.active_jobs:>3} active  {owner}")


if __name__ == "__main__":
    cli()
