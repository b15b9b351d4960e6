"""Write random, mutually consistent secrets/*.env files for a Kubernetes overlay.

Existing files are kept unless --force is given, so running it twice changes nothing. Files or
keys that newer manifests need (a new MongoDB user, say) are added to an existing set, reusing
the passwords already there, so that the running databases keep working.
"""

import argparse
import secrets
import sys
from pathlib import Path

DEFAULT_DIR = Path(__file__).resolve().parent.parent / "manifests/overlays/minikube/secrets"
# one MongoDB user each (mongodb-init-users.js): the services, `ops` for the sweep CronJob,
# `backup` (reads only) for the backup CronJob and `restore` for the restore Job
MONGODB_USERS = ("gateway", "converter", "notification", "ops", "backup", "restore")
# files later manifests added, made only of passwords the other files hold: an existing set
# lacking one is completed; any other file missing means the set cannot be (its passwords live
# on in the databases)
ADDED_LATER = ("ops", "backup", "restore", "rabbitmq-cluster")
# the nodes of RabbitMQ as a cluster (components/rabbitmq-cluster): rabbitmq-N.rabbitmq, the
# StatefulSet's pods behind its headless Service
RABBITMQ_NODES = 3


def token() -> str:
    """A random URL-safe value of 43 characters (32 random bytes), usable inside URLs as is."""
    return secrets.token_urlsafe(32)


def rabbitmq_url(user: str, password: str, host: str = "rabbitmq") -> str:
    """The broker address of one node (``host``), for the default virtual host."""
    return f"amqp://{user}:{password}@{host}:5672/%2F"


def rabbitmq_cluster_url(user: str, password: str) -> str:
    """Every node of the cluster, comma-separated: the clients fail over between them."""
    return ",".join(rabbitmq_url(user, password, f"rabbitmq-{n}.rabbitmq")
                    for n in range(RABBITMQ_NODES))


def mongodb_uri(user: str, password: str) -> str:
    """The connection string of one MongoDB user."""
    return f"mongodb://{user}:{password}@mongodb:27017/?authSource=admin"


def contents(admin_email: str, known: dict[str, dict[str, str]] | None = None,
             ) -> dict[str, dict[str, str]]:
    """Every env file's variables, sharing the passwords each pair of services must agree on.

    Passwords found in ``known`` (file name -> its variables) are reused, new ones drawn.
    """
    known = known or {}

    def reuse(name: str, key: str) -> str:
        return known.get(name, {}).get(key) or token()

    mysql_password = reuse("auth", "MYSQL_PASSWORD")
    mysql_backup_password = reuse("mysql", "MARIADB_BACKUP_PASSWORD")
    rabbit_user = known.get("rabbitmq", {}).get("RABBITMQ_DEFAULT_USER") or "mp3converter"
    rabbit_password = reuse("rabbitmq", "RABBITMQ_DEFAULT_PASS")
    mongo = {user: reuse("mongodb", f"MONGODB_{user.upper()}_PASSWORD") for user in MONGODB_USERS}
    broker_url = rabbitmq_url(rabbit_user, rabbit_password)
    # the gateway checks the download links it and notification (webhook events) sign
    download_secret = reuse("gateway", "DOWNLOAD_URL_SECRET")
    no_smtp_login = {"SMTP_USERNAME": "", "SMTP_PASSWORD": ""}  # Mailpit needs none
    return {
        "auth": {"JWT_SECRET": token(), "MYSQL_PASSWORD": mysql_password, **no_smtp_login},
        "gateway": {"DOWNLOAD_URL_SECRET": download_secret, "RABBITMQ_URL": broker_url,
                    "MONGODB_URI": mongodb_uri("gateway", mongo["gateway"])},
        "converter": {"RABBITMQ_URL": broker_url,
                      "MONGODB_URI": mongodb_uri("converter", mongo["converter"])},
        "notification": {"RABBITMQ_URL": broker_url,
                         "MONGODB_URI": mongodb_uri("notification", mongo["notification"]),
                         **no_smtp_login, "DOWNLOAD_URL_SECRET": download_secret},
        "ops": {"RABBITMQ_URL": broker_url, "MONGODB_URI": mongodb_uri("ops", mongo["ops"])},
        # the backup CronJob reads as MariaDB's and MongoDB's `backup`; the restore Job writes
        # as auth's own MariaDB user and MongoDB's `restore`
        "backup": {"MONGODB_URI": mongodb_uri("backup", mongo["backup"]),
                   "MYSQL_PASSWORD": mysql_backup_password},
        "restore": {"MONGODB_URI": mongodb_uri("restore", mongo["restore"]),
                    "MYSQL_PASSWORD": mysql_password},
        "mysql": {"MARIADB_ROOT_PASSWORD": reuse("mysql", "MARIADB_ROOT_PASSWORD"),
                  "MARIADB_BACKUP_PASSWORD": mysql_backup_password},
        "mongodb": {
            "MONGO_INITDB_ROOT_USERNAME": "root",
            "MONGO_INITDB_ROOT_PASSWORD": token(),
            **{f"MONGODB_{user.upper()}_PASSWORD": mongo[user] for user in MONGODB_USERS},
        },
        "rabbitmq": {
            "RABBITMQ_DEFAULT_USER": rabbit_user,
            "RABBITMQ_DEFAULT_PASS": rabbit_password,
            # shared by every node of a cluster and by the CLI tools beside each node
            "RABBITMQ_ERLANG_COOKIE": reuse("rabbitmq", "RABBITMQ_ERLANG_COOKIE"),
        },
        # the services' and the sweep's RABBITMQ_URL when RabbitMQ runs as three nodes
        "rabbitmq-cluster": {"RABBITMQ_URL": rabbitmq_cluster_url(rabbit_user, rabbit_password)},
        "admin-user": {"ADMIN_EMAIL": admin_email, "ADMIN_PASSWORD": token()},
    }


def read_env(path: Path) -> dict[str, str]:
    """The variables an env file sets."""
    found = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, value = line.split("=", 1)
            found[key.strip()] = value
    return found


def write_env(path: Path, values: dict[str, str], append: bool = False) -> None:
    """Write (or append) ``KEY=value`` lines, readable by the owner only."""
    text = "".join(f"{key}={value}\n" for key, value in values.items())
    if append:
        before = path.read_text()
        text = before + ("" if before.endswith("\n") or not before else "\n") + text
    path.write_text(text)
    path.chmod(0o600)


def main(argv: list[str]) -> int:
    """Write the files that are missing (all of them with --force), complete the others, and
    say what changed."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--admin-email", default="admin@example.com")
    parser.add_argument("--force", action="store_true", help="replace existing files")
    args = parser.parse_args(argv)
    files = {name: args.dir / f"{name}.env" for name in contents(args.admin_email)}
    present = {name: read_env(path) for name, path in files.items() if path.exists()}
    if args.force or not present:
        args.dir.mkdir(parents=True, exist_ok=True)
        for name, values in contents(args.admin_email).items():
            write_env(files[name], values)
            print(f"wrote {files[name]}")
        return 0
    lost = [f"{name}.env" for name in files if name not in present and name not in ADDED_LATER]
    if lost:
        print(f"{args.dir}: {', '.join(lost)} missing; rerun with --force, then `make undeploy "
              "deploy` (the databases keep their old passwords)", file=sys.stderr)
        return 1
    changed = []
    for name, values in contents(args.admin_email, present).items():
        if name not in present:
            write_env(files[name], values)
            changed.append(f"wrote {files[name]}")
        elif added := {k: v for k, v in values.items() if k not in present[name]}:
            write_env(files[name], added, append=True)
            changed.append(f"added {', '.join(added)} to {files[name]}")
    if not changed:
        print(f"{args.dir}: secrets already exist (use --force to replace them)")
        return 0
    print("\n".join(changed))
    print("existing values were kept; `make deploy` applies the additions")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
