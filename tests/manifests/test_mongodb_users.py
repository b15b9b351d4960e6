"""Each service logs in to MongoDB as its own user, whose role allows only what its code does.

The mongodb-init-users Job's script runs here under Node against a stand-in for mongosh's `db`
(tests/manifests/mongosh_standin.js): no MongoDB with access control runs on this machine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import yaml

from tests.manifests.helpers import (
    DEPLOYABLE,
    ROOT,
    find,
    pod_labels,
    pod_templates,
    secret_values,
)

pytestmark = pytest.mark.manifests

STANDIN = ROOT / "tests" / "manifests" / "mongosh_standin.js"
SCRIPT = ROOT / "manifests" / "infra" / "mongodb-init-users.js"
# MongoDB users, in the script's order: one per service, `ops` for the operator commands,
# `backup` for the backup CronJob and `restore` for the restore Job run by hand
MONGODB_SERVICES = ("gateway", "converter", "notification", "ops", "backup", "restore")
# pods that run a program's code, and the MongoDB user they log in as (the restore Job is in no
# overlay: test_restore_job_logs_in_as_restore)
MONGODB_CLIENTS = {"gateway": "gateway", "ops-sweep": "ops", "backup": "backup",
                   "converter": "converter", "notification": "notification"}
# the users whose code also runs under docker compose
COMPOSED = ("gateway", "converter", "notification", "ops")
# the compose service that runs each user's code
COMPOSE_CLIENTS = {"gateway": "gateway", "converter": "converter",
                   "notification": "notification", "ops": "ops-sweep"}

UPDATE = {"find", "update"}  # find-and-modify, counting and distinct need find
REMOVE = {"find", "remove"}
WRITE = {"find", "insert", "update", "remove", "createCollection"}
INDEX = {"createIndex"}  # the indexes of what it queries, made at its start (common/indexes.py)


def wanted_privileges(db: str) -> dict[str, dict[tuple[str, str], set[str]]]:
    """user -> {(database, collection): actions}: what its code does (common/jobs.py for the
    jobs, common/store.py for the GridFS buckets inside ``db``), no more."""

    def bucket(name: str, actions: set[str]) -> dict[tuple[str, str], set[str]]:
        return {(db, f"{name}.{c}"): actions for c in ("files", "chunks")}

    return {
        "gateway": {
            # records and dispatches jobs, deletes one or all of an owner's, counts usage
            (db, "jobs"): WRITE | INDEX,
            **bucket("videos", {"find", "insert", "remove", "createCollection"} | INDEX),
            **bucket("mp3s", REMOVE | INDEX),  # serves MP3s, deletes them with their job
            # flask-limiter's counters (gateway/ratelimit_storage.py makes their TTL index)
            (db, "rate_limits"): WRITE | INDEX,
            (db, "uploads"): WRITE | INDEX,  # uploads in progress, counted against the quotas
            (db, "usage"): WRITE,  # owners' usage: counted, made, gone with the account
            # webhook endpoints: registered, listed, deleted with their deliveries (their
            # indexes made at its start, common/indexes.py)
            (db, "webhooks"): WRITE | INDEX,
            (db, "webhook_deliveries"): WRITE | INDEX,
            # resumable uploads (tus) being received: offset, checksum state, last partial chunk
            (db, "resumable_uploads"): WRITE | INDEX,
        },
        "converter": {
            (db, "jobs"): UPDATE | INDEX,  # claims, reports progress, finishes, dispatches
            **bucket("videos", REMOVE | INDEX),  # reads the video, drops it once the job is final
            # stores the MP3; removes it when the job was deleted meanwhile (reads none)
            **bucket("mp3s", {"insert", "remove", "createCollection"} | INDEX),
            # each transition counted in its owner's usage (an upsert)
            (db, "usage"): {"insert", "update", "createCollection"},
        },
        # reads the job, records the email: by _id alone, no index to make
        "notification": {(db, "jobs"): UPDATE,
                         # webhooks: endpoints' failures counted, each attempt recorded (the
                         # oldest removed), each success recorded once
                         (db, "webhooks"): WRITE, (db, "webhook_deliveries"): WRITE,
                         (db, "webhook_sent"): {"find", "insert", "createCollection"}},
        # the sweep and the DLQ tools: re-queue, fail, expire, delete deleted accounts' jobs;
        # expired MP3s, dropped videos and orphaned files go; jobs and files owned by an
        # address (an earlier release) are handed to its account: their metadata changes;
        # `migrate` stores the covers earlier releases kept only inside the MP3s
        "ops": {
            (db, "jobs"): {"find", "update", "remove"} | INDEX,
            **bucket("videos", REMOVE | INDEX),
            **bucket("mp3s", REMOVE | {"insert", "createCollection"} | INDEX),
            (db, "videos.files"): {"find", "update", "remove"} | INDEX,
            (db, "mp3s.files"): {"find", "update", "remove", "insert", "createCollection"} | INDEX,
            (db, "uploads"): REMOVE | INDEX,  # usage counts uploads in progress; stale ones go
            (db, "usage"): WRITE,  # counted by transitions, reconciled with the jobs
            (db, "leases"): WRITE,  # one sweep at a time (ops/lease.py)
            # the webhooks of deleted accounts go (with their deliveries); `migrate` makes
            # every index
            (db, "webhooks"): REMOVE | INDEX,
            (db, "webhook_deliveries"): REMOVE | INDEX,
            # expired unfinished resumable uploads go, and a deleted account's
            (db, "resumable_uploads"): REMOVE | INDEX,
            # a webhook delivery's success is forgotten once no redelivery can come
            (db, "webhook_sent"): REMOVE | INDEX,
        },
        # every collection of the database (collection ""): the backup lists them and their
        # indexes and reads them, and writes only the fixed scratch database it trial-restores
        # each set into (dropped after)
        "backup": {
            (db, ""): {"find", "listCollections", "listIndexes"},
            (f"{db}_verify", ""): {"find", "listCollections", "listIndexes", "insert",
                                   "createCollection", "dropCollection", "createIndex",
                                   "dropDatabase"},
        },
        # the restore empties or drops each collection, refills it, rebuilds its indexes and
        # reconciles the jobs with the files restored
        "restore": {
            (db, ""): {"find", "listCollections", "listIndexes", "insert", "update", "remove",
                       "createCollection", "dropCollection", "createIndex"},
        },
    }


def init_job(objects: list[dict]) -> tuple[dict, dict]:
    """The mongodb-init-users Job and its pod spec."""
    [job] = find(objects, "Job", "mongodb-init-users")
    return job, job["spec"]["template"]["spec"]


def job_environment(objects: list[dict]) -> dict[str, str]:
    """The environment the Job's container gets, resolved from its ConfigMaps and Secrets."""
    _, spec = init_job(objects)
    [container] = spec["containers"]
    env = {}
    for source in container.get("envFrom", []):
        env.update(secret_values(objects, source["secretRef"]["name"]))
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
            continue
        ref = item["valueFrom"].get("configMapKeyRef") or item["valueFrom"]["secretKeyRef"]
        if "configMapKeyRef" in item["valueFrom"]:
            [config] = find(objects, "ConfigMap", ref["name"])
            env[item["name"]] = config["data"][ref["key"]]
        else:
            env[item["name"]] = secret_values(objects, ref["name"])[ref["key"]]
    return env


def job_script(objects: list[dict]) -> str:
    """The script file the Job's command runs, read from the ConfigMap mounted at its path."""
    _, spec = init_job(objects)
    [container] = spec["containers"]
    path = container["command"][-1]
    [mount] = [m for m in container["volumeMounts"] if path.startswith(m["mountPath"] + "/")]
    [volume] = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    [config] = find(objects, "ConfigMap", volume["configMap"]["name"])
    return config["data"][path.removeprefix(mount["mountPath"] + "/")]


def run_script(script: str, env: dict[str, str], state, tmp_path) -> tuple[str, dict]:
    """Run the script once under the stand-in; (what it printed, roles and users after)."""
    path = tmp_path / "init-users.js"
    path.write_text(script)
    root = {"STANDIN_ROOT_USER": env["MONGO_INITDB_ROOT_USERNAME"],
            "STANDIN_ROOT_PASSWORD": env["MONGO_INITDB_ROOT_PASSWORD"]}
    out = subprocess.run(["node", str(STANDIN), str(path), str(state)],
                         env={"PATH": os.environ["PATH"], **env, **root},
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout, json.loads(state.read_text())


def granted(role: dict) -> dict[tuple[str, str], set[str]]:
    """{(database, collection): actions} of a role's privileges."""
    found: dict[tuple[str, str], set[str]] = {}
    for privilege in role["privileges"]:
        key = (privilege["resource"]["db"], privilege["resource"]["collection"])
        assert key not in found, f"{key} granted twice"
        found[key] = set(privilege["actions"])
    return found


def uri_of(objects: list[dict], owner: dict, spec: dict) -> str:
    """The MONGODB_URI a workload's container gets from its Secret."""
    [container] = spec["containers"]
    values = {}
    for source in container.get("envFrom", []):
        if "secretRef" in source:
            values.update(secret_values(objects, source["secretRef"]["name"]))
    assert "MONGODB_URI" in values, f"{owner['metadata']['name']}: no MONGODB_URI in its Secret"
    return values["MONGODB_URI"]


@pytest.fixture(scope="module")
def node() -> str:
    found = shutil.which("node")
    if not found:
        pytest.fail("node is needed to run the MongoDB user script (apt-get install nodejs)")
    return found


@pytest.mark.parametrize("overlay", DEPLOYABLE)
def test_init_job_creates_exactly_one_user_per_service_with_its_role(
        rendered, overlay, node, tmp_path):
    objects = rendered[overlay]
    env = job_environment(objects)
    db = env["MONGODB_DB"]
    state = tmp_path / "state.json"
    printed, after = run_script(job_script(objects), env, state, tmp_path)

    assert set(after["users"]) == set(MONGODB_SERVICES), printed
    assert set(after["roles"]) == set(MONGODB_SERVICES)
    for service, privileges in wanted_privileges(db).items():
        user, role = after["users"][service], after["roles"][service]
        assert user["roles"] == [{"role": service, "db": "admin"}], service
        assert role["roles"] == [], f"{service}: its role inherits no built-in role"
        assert granted(role) == privileges, service
        assert f"created user {service}" in printed


@pytest.mark.parametrize("overlay", DEPLOYABLE)
def test_init_job_runs_again_harmlessly(rendered, overlay, node, tmp_path):
    objects = rendered[overlay]
    env, script = job_environment(objects), job_script(objects)
    state = tmp_path / "state.json"
    _, first = run_script(script, env, state, tmp_path)
    changed = {**env, "MONGODB_CONVERTER_PASSWORD": "rotated-" + env["MONGODB_CONVERTER_PASSWORD"]}
    printed, second = run_script(script, changed, state, tmp_path)
    assert "updated user converter" in printed
    assert first["roles"] == second["roles"]
    assert second["users"]["converter"]["pwd"] == changed["MONGODB_CONVERTER_PASSWORD"]
    assert second["users"]["gateway"] == first["users"]["gateway"]
    assert second["log"][len(first["log"]):] == [
        f"{op} {s}" for s in MONGODB_SERVICES for op in ("updateRole", "updateUser")]


def test_init_job_refuses_to_run_without_a_password(rendered, node, tmp_path):
    objects = rendered["minikube"]
    env = {k: v for k, v in job_environment(objects).items() if k != "MONGODB_GATEWAY_PASSWORD"}
    path, state = tmp_path / "init-users.js", tmp_path / "state.json"
    path.write_text(job_script(objects))
    out = subprocess.run(
        ["node", str(STANDIN), str(path), str(state)],
        env={"PATH": os.environ["PATH"], **env,
             "STANDIN_ROOT_USER": env["MONGO_INITDB_ROOT_USERNAME"],
             "STANDIN_ROOT_PASSWORD": env["MONGO_INITDB_ROOT_PASSWORD"]},
        capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "MONGODB_GATEWAY_PASSWORD is required" in out.stderr


@pytest.mark.parametrize("overlay", DEPLOYABLE)
def test_every_service_logs_in_as_its_own_user_never_root(rendered, overlay):
    objects = rendered[overlay]
    mongo = secret_values(objects, "mongodb-secrets")
    seen = set()
    for owner, spec in pod_templates(objects):
        app = pod_labels(owner).get("app")
        if app not in MONGODB_CLIENTS:
            continue
        user = MONGODB_CLIENTS[app]
        uri = urlsplit(uri_of(objects, owner, spec))
        assert unquote(uri.username or "") == user, f"{app} must log in as {user}"
        assert uri.username != mongo["MONGO_INITDB_ROOT_USERNAME"], f"{app} logs in as root"
        assert unquote(uri.password or "") == mongo[f"MONGODB_{user.upper()}_PASSWORD"], app
        assert parse_qs(uri.query).get("authSource") == ["admin"], app
        assert uri.hostname == "mongodb"
        seen.add(app)
    assert seen == set(MONGODB_CLIENTS)


@pytest.mark.parametrize("overlay", DEPLOYABLE)
def test_only_mongodb_and_its_init_job_see_the_root_password(rendered, overlay):
    objects = rendered[overlay]
    for owner, spec in pod_templates(objects):
        app = pod_labels(owner).get("app")
        for container in spec["containers"]:
            refs = {s["secretRef"]["name"] for s in container.get("envFrom", [])
                    if "secretRef" in s}
            keys = [e["valueFrom"]["secretKeyRef"] for e in container.get("env", [])
                    if "secretKeyRef" in e.get("valueFrom", {})]
            refs |= {f"{ref['name']}:{ref['key']}" for ref in keys}
            root = {r for r in refs if r.startswith("mongodb-secrets")}
            if app == "mongodb":
                assert all(r.endswith(":MONGO_INITDB_ROOT_USERNAME")
                           or r.endswith(":MONGO_INITDB_ROOT_PASSWORD") for r in root), root
            elif app != "mongodb-init-users":
                assert not root, f"{app} reads {root}"


def test_services_agree_on_the_database_the_roles_name(rendered):
    objects = rendered["minikube"]
    db = job_environment(objects)["MONGODB_DB"]
    for service in MONGODB_SERVICES:
        # the restore Job reads the backup's ConfigMap
        config_name = "backup-config" if service == "restore" else f"{service}-config"
        [config] = find(objects, "ConfigMap", config_name)
        assert config["data"]["MONGODB_DB"] == db, service


def test_restore_job_logs_in_as_restore(rendered):
    """The restore Job (created by hand, in no overlay) writes as `restore`, never as root."""
    objects = rendered["minikube"]
    path = ROOT / "manifests" / "components" / "backup" / "restore-job.yaml"
    [job] = [d for d in yaml.safe_load_all(path.read_text()) if d]
    mongo = secret_values(objects, "mongodb-secrets")
    uri = urlsplit(uri_of(objects, job, job["spec"]["template"]["spec"]))
    assert unquote(uri.username or "") == "restore"
    assert unquote(uri.password or "") == mongo["MONGODB_RESTORE_PASSWORD"]
    assert parse_qs(uri.query).get("authSource") == ["admin"] and uri.hostname == "mongodb"


def test_deploy_reruns_the_init_jobs():
    out = subprocess.run(["make", "-s", "-n", "-f", "mk/kubernetes.mk", "deploy"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60, check=True).stdout
    delete = [line for line in out.splitlines() if "delete job" in line]
    apply = out.index("kubectl apply -k manifests/overlays/minikube\n")
    assert delete and "mongodb-init-users" in delete[0] and "auth-init-db" in delete[0]
    assert out.index(delete[0]) < apply


def test_compose_runs_the_same_script_before_the_services():
    compose = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())["services"]
    init = compose["mongodb-init-users"]
    mounts = dict(m.rsplit(":", 1)[0].split(":") for m in init["volumes"])
    [target] = [t for s, t in mounts.items() if (ROOT / s).resolve() == SCRIPT]
    assert target in init["command"]
    assert init["environment"]["MONGODB_DB"] == compose["gateway"]["environment"]["MONGODB_DB"]
    for user in COMPOSED:
        service = compose[COMPOSE_CLIENTS[user]]
        condition = service["depends_on"]["mongodb-init-users"]["condition"]
        assert condition == "service_completed_successfully", user
        assert service["environment"]["MONGODB_DB"] == init["environment"]["MONGODB_DB"]


def test_init_job_mongosh_sends_no_usage_data(rendered):
    objects = rendered["minikube"]
    _, spec = init_job(objects)
    [container] = spec["containers"]
    [mount] = [m for m in container["volumeMounts"] if m["mountPath"] == "/etc/mongosh.conf"]
    [volume] = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    [config] = find(objects, "ConfigMap", volume["configMap"]["name"])
    settings = yaml.safe_load(config["data"][mount["subPath"]])
    assert settings == {"mongosh": {"forceDisableTelemetry": True}}
