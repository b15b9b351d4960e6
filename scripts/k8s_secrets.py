"""Write random, mutually consistent secrets/*.env files for a Kubernetes overlay.

Existing files are kept unless --force is given, so running it twice changes nothing.
"""

import argparse
import secrets
import sys
from pathlib import Path

DEFAULT_DIR = Path(__file__).resolve().parent.parent / "manifests/overlays/minikube/secrets"


def token() -> str:
    """A random URL-safe value, usable inside connection URLs without escaping."""
    return secrets.token_urlsafe(24)


def contents(admin_email: str) -> dict[str, dict[str, str]]:
    """Every env file's variables, sharing the passwords each pair of services must agree on."""
    mysql_password, rabbit_password, mongo_password = token(), token(), token()
    rabbitmq_url = f"amqp://mp3converter:{rabbit_password}@rabbitmq:5672/%2F"
    mongodb_uri = f"mongodb://root:{mongo_password}@mongodb:27017/?authSource=admin"
    backends = {"RABBITMQ_URL": rabbitmq_url, "MONGODB_URI": mongodb_uri}
    return {
        "auth": {"JWT_SECRET": token(), "MYSQL_PASSWORD": mysql_password},
        "gateway": {"DOWNLOAD_URL_SECRET": token(), **backends},
        "converter": dict(backends),
        "notification": {**backends, "SMTP_USERNAME": "", "SMTP_PASSWORD": ""},
        "mysql": {"MARIADB_ROOT_PASSWORD": token()},
        "mongodb": {
            "MONGO_INITDB_ROOT_USERNAME": "root",
            "MONGO_INITDB_ROOT_PASSWORD": mongo_password,
        },
        "rabbitmq": {
            "RABBITMQ_DEFAULT_USER": "mp3converter",
            "RABBITMQ_DEFAULT_PASS": rabbit_password,
        },
        "admin-user": {"ADMIN_EMAIL": admin_email, "ADMIN_PASSWORD": token()},
    }


def main(argv: list[str]) -> int:
    """Write the files that are missing (all of them with --force) and say which."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--admin-email", default="admin@example.com")
    parser.add_argument("--force", action="store_true", help="replace existing files")
    args = parser.parse_args(argv)
    files = {name: args.dir / f"{name}.env" for name in contents(args.admin_email)}
    present = [p for p in files.values() if p.exists()]
    if present and len(present) < len(files) and not args.force:
        # passwords are shared between files: a partial set cannot be completed consistently
        print(f"{args.dir}: some secrets files are missing; rerun with --force", file=sys.stderr)
        return 1
    if present and not args.force:
        print(f"{args.dir}: secrets already exist (use --force to replace them)")
        return 0
    args.dir.mkdir(parents=True, exist_ok=True)
    for name, values in contents(args.admin_email).items():
        path = files[name]
        path.write_text("".join(f"{key}={value}\n" for key, value in values.items()))
        path.chmod(0o600)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
