"""``python -m ops sweep | dlq-list [QUEUE] | dlq-redrive [QUEUE] | usage | backup [--verify] |
verify-backup PATH | restore PATH [--force] | migrate``."""

import json
import sys
from pathlib import Path

import click
import pymongo.errors

from common import log as jsonlog
from common import topology
from common.broker import Publisher
from common.errors import RetryableError
from common.jobs import Jobs
from common.quotas import Quotas
from common.settings import load_or_exit
from common.store import Store
from common.units import size
from ops.config import OpsConfig

QUEUE_CHOICE = click.Choice(list(topology.ALL_QUEUES))


@click.group()
@click.pass_context
def cli(ctx):
    """Operator commands of mp3converter."""
    config = load_or_exit(OpsConfig.from_env, "ops")
    jsonlog.configure("ops", config.log_level)
    store = Store(config.mongo)
    ctx.call_on_close(store.close)
    ctx.obj = {"config": config, "store": store, "jobs": Jobs(store, config.lifecycle)}


def _publisher(ctx) -> Publisher:
    messaging = ctx.obj["config"].messaging
    publisher = Publisher(messaging.rabbitmq_url, messaging.max_attempts)
    ctx.call_on_close(publisher.close)
    return publisher


@cli.command("sweep")
@click.pass_context
def sweep_command(ctx):
    """Recover lost and stuck jobs, expire MP3s, remove orphans and deleted accounts' files
    (nothing, exit 0, while another sweep holds the lease: it says until when)."""
    from ops.sweep import run

    ctx.obj["store"].ensure_indexes()
    try:
        counts = run(ctx.obj["store"], ctx.obj["jobs"], lambda: _publisher(ctx),
                     ctx.obj["config"])
    except (pymongo.errors.PyMongoError, RetryableError) as exc:
        # MongoDB or the broker did not answer: every step is safe to repeat, the next sweep
        # does what this one could not.
        click.echo(json.dumps({"failed": f"{type(exc).__name__}: {exc}"[:500],
                               "retry": "the next sweep does what this one could not"}))
        ctx.exit(1)
    click.echo(json.dumps(counts))


@cli.command("dlq-list")
@click.argument("queue", type=QUEUE_CHOICE, default=topology.VIDEO)
@click.pass_context
def dlq_list_command(ctx, queue: str):
    """Print the dead letters of QUEUE (video, video.long, mp3, webhooks or webhooks.deliver),
    one JSON object per line."""
    from ops.dlq import dead_letters

    messaging = ctx.obj["config"].messaging
    for entry in dead_letters(messaging.rabbitmq_url, messaging.max_attempts, queue):
        click.echo(json.dumps(entry))


@cli.command("dlq-redrive")
@click.argument("queue", type=QUEUE_CHOICE, default=topology.VIDEO)
@click.pass_context
def dlq_redrive_command(ctx, queue: str):
    """Try the jobs of QUEUE's dead letters again (dropping those with nothing to retry); a
    webhook event or delivery is published again as it was."""
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
    quotas = Quotas(jobs.store)
    rows = [(owner, quotas.usage(owner)) for owner in jobs.owners()]
    rows.sort(key=lambda row: row[1].bytes, reverse=True)
    for owner, usage in rows:
        if as_json:
            click.echo(json.dumps({"owner": owner, "bytes": usage.bytes,
                                   "active_jobs": usage.active_jobs, "jobs": usage.counts}))
        else:
            click.echo(f"{size(usage.bytes):>10}  {usage.active_jobs:>3} active  {owner}")


@cli.command("migrate")
@click.pass_context
def migrate_command(ctx):
    """Move GridFS files of earlier releases into today's buckets and upgrade their jobs, build
    the indexes (common.indexes), then make their classic queues quorum queues (run before the
    services start; a stopped run is finished by the next one)."""
    import pika.exceptions

    from common.indexes import MIGRATE_TIMEOUT
    from ops.migrate import Inconsistent, migrate
    from ops.queues import QueuesBusy, migrate_queues

    config = ctx.obj["config"]
    # first: the copy's checks read chunks by file, the covers' files by job
    built = ctx.obj["store"].ensure_indexes(timeout=MIGRATE_TIMEOUT)
    try:
        counts = {**migrate(ctx.obj["store"], config.lifecycle.mp3_retention_seconds),
                  "indexes": built}
    except Inconsistent as exc:
        click.echo(f"ops: migrate stopped: {exc}; every source is kept, run it again", err=True)
        sys.exit(1)
    try:
        counts["queues"] = migrate_queues(config.messaging.rabbitmq_url,
                                          config.messaging.max_attempts)
    except (QueuesBusy, pika.exceptions.AMQPError, OSError) as exc:
        click.echo(json.dumps(counts))
        click.echo(f"ops: migrate stopped at the queues: {exc!r}; every message is kept, run "
                   "it again", err=True)
        sys.exit(1)
    click.echo(json.dumps(counts))
    if counts["conflicts"]:
        click.echo(f"ops: migrate: {counts['conflicts']} legacy file(s) kept: a different file "
                   "with the same id is in the bucket (see the log)", err=True)
        sys.exit(1)

def _backup_settings(ctx, need_dir: bool):
    settings = ctx.obj["config"].backup
    if need_dir and not settings.backup_dir:
        click.echo("ops: configuration error: environment variable BACKUP_DIR is required by "
                   "`backup`: the directory that holds the backup sets", err=True)
        ctx.exit(2)
    return settings


def _finish(line: dict, ok: bool) -> None:
    """Print the final JSON line; exit 1 after a failure (its error also on stderr)."""
    if not ok:
        click.echo(f"ops: {line['event']} failed: {line.get('error')}", err=True)
    click.echo(json.dumps(line))
    sys.exit(0 if ok else 1)


@cli.command("backup")
@click.option("--verify", is_flag=True, help="Verify the new set, then remove old sets.")
@click.pass_context
def backup_command(ctx, verify: bool):
    """Write one backup set (MariaDB and MongoDB) into BACKUP_DIR."""
    from ops.backup import run

    settings = _backup_settings(ctx, need_dir=True)
    _finish(*run(settings, ctx.obj["store"].db, verify))


@cli.command("verify-backup")
@click.argument("path", type=click.Path(file_okay=False, path_type=Path))
@click.pass_context
def verify_backup_command(ctx, path: Path):
    """Check every checksum of the set at PATH and restore it into scratch databases."""
    from ops.backup_verify import run

    _finish(*run(_backup_settings(ctx, need_dir=False), ctx.obj["store"].client, path))


@cli.command("restore")
@click.argument("path", type=click.Path(file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace what the databases hold.")
@click.pass_context
def restore_command(ctx, path: Path, force: bool):
    """Restore the set at PATH into MYSQL_DB and MONGODB_DB, then reconcile the jobs."""
    from ops.backup_mariadb import ClientError
    from ops.manifest import SetDamaged
    from ops.restore import TargetNotEmpty, restore

    try:
        done = restore(ctx.obj["config"], ctx.obj["store"], path, force)
        # a set made before an index was added restores without it
        done["indexes_ensured"] = ctx.obj["store"].ensure_indexes()
    except (SetDamaged, TargetNotEmpty) as exc:
        click.echo(f"ops: restore refused: {exc}", err=True)
        sys.exit(1)
    except ClientError as exc:
        click.echo(f"ops: restore failed: {exc}", err=True)
        sys.exit(1)
    click.echo(json.dumps(done))


if __name__ == "__main__":
    cli()
