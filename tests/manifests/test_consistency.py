"""The manifests agree with the code, with each other and with `make images`."""

from __future__ import annotations

import ast
import base64
import re
import shutil
import subprocess

import pytest
import yaml

from tests.manifests.helpers import (
    CLUSTER,
    DEPLOYABLE,
    HTTP_SERVICES,
    OVERLAYS,
    ROOT,
    SERVICES,
    ensure_minikube_secrets,
    find,
    pod_labels,
    pod_templates,
    selects,
)

pytestmark = pytest.mark.manifests

# read at start but deliberately left to the code's default in every deployment
LEFT_TO_DEFAULT = {"FFMPEG_BINARY"}  # the ffmpeg binary inside the imageio-ffmpeg wheel
# compose settings that differ from the cluster's on purpose: no Ingress host, no proxy in front
COMPOSE_DIFFERS = {"auth": ("PUBLIC_URL",), "notification": ("PUBLIC_URL",),
                   "gateway": ("TRUSTED_PROXY_COUNT", "WEB_KEEPALIVE_SECONDS")}
# the sweep CronJob: it runs the operator commands (src/ops) with ConfigMap ops-config
SWEEP = "ops-sweep"
# the backup CronJob (components/backup): `python3 -m ops backup` with ConfigMap backup-config
BACKUP = "backup"
RESTORE_JOB = ROOT / "manifests" / "components" / "backup" / "restore-job.yaml"
# read by the backup commands, left to their default on purpose: RELEASE (the image's package
# version), PUSHGATEWAY_URL (set by the monitoring component only, see test_monitoring.py)
BACKUP_LEFT_TO_DEFAULT = {"RELEASE", "PUSHGATEWAY_URL"}
# settings several programs read that must agree wherever they are set
SHARED_SETTINGS = ("MONGODB_DB", "MAX_DELIVERY_ATTEMPTS", "MP3_RETENTION_HOURS",
                   "KEEP_SOURCE_VIDEOS", "USER_CONVERSIONS_AT_ONCE",
                   # checked at registration (gateway) and before each delivery (notification)
                   "WEBHOOK_URL_MAX_LENGTH", "WEBHOOK_ALLOWED_NETWORKS",
                   "DOWNLOAD_URL_TTL_SECONDS")


VARIABLE = re.compile(r"[A-Z][A-Z0-9_]*")


def env_names(tree: ast.AST) -> set[str]:
    """Names passed as first argument to an env_* reader (common.settings' or a service's own,
    such as env_rate_limit) or to os.environ.get / os.getenv."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            value = node.args[0].value
            if not isinstance(value, str) or not VARIABLE.fullmatch(value):
                continue
            if name.startswith("env_") or name == "getenv" or (
                name == "get" and "environ" in ast.unparse(func)
            ):
                names.add(value)
    return names


def shared_settings_names() -> dict[str, set[str]]:
    """Variables each settings class of common.settings reads."""
    tree = ast.parse((ROOT / "src/common/settings.py").read_text())
    return {n.name: env_names(n) for n in tree.body if isinstance(n, ast.ClassDef)}


def names_read(tree: ast.AST, shared: dict[str, set[str]]) -> set[str]:
    """Variables ``tree`` reads itself or through the common.settings classes it names."""
    names = env_names(tree)
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    for cls in used & shared.keys():
        names |= shared[cls]
    return names


def variables_read(service: str) -> set[str]:
    """Every environment variable the service reads, from its source."""
    shared = shared_settings_names()
    names: set[str] = set()
    for path in (ROOT / "src" / service).rglob("*.py"):
        names |= names_read(ast.parse(path.read_text()), shared)
    if service in HTTP_SERVICES:
        names |= env_names(ast.parse((ROOT / "src/common/gunicorn_conf.py").read_text()))
    return names


def data_keys(obj: dict) -> set[str]:
    """Keys of a ConfigMap or Secret."""
    return set(obj.get("data") or {}) | set(obj.get("stringData") or {})


def container_env(objects: list[dict], container: dict) -> set[str]:
    """Every variable a container gets through env and envFrom (referenced objects must exist)."""
    names = {e["name"] for e in container.get("env", [])}
    for source in container.get("envFrom", []):
        for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            if key in source:
                [obj] = find(objects, kind, source[key]["name"]) or [None]
                assert obj, f"{container['name']}: {kind} {source[key]['name']} does not exist"
                names |= data_keys(obj)
    return names


def test_source_scan_finds_documented_variables():
    assert {"JWT_SECRET", "MYSQL_HOST", "PORT", "WEB_WORKERS", "SMTP_HOST"} <= variables_read(
        "auth")
    assert {"TRUSTED_PROXY_COUNT", "LOGIN_RATE_LIMIT_PER_ADDRESS"} <= variables_read("gateway")
    assert {"RABBITMQ_URL", "MONGODB_URI", "HEARTBEAT_FILE", "FFMPEG_BINARY"} <= variables_read(
        "converter")


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("service", SERVICES)
def test_every_variable_read_is_provided(rendered, overlay, service):
    objects = rendered[overlay]
    [deployment] = find(objects, "Deployment", service)
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    missing = variables_read(service) - LEFT_TO_DEFAULT - container_env(objects, container)
    assert not missing, f"{overlay}: {service} reads {sorted(missing)} but nothing provides them"


def sweep_container(objects: list[dict], name: str = SWEEP) -> dict:
    """The container of the sweep CronJob (or another CronJob of the operator commands)."""
    [cronjob] = find(objects, "CronJob", name)
    [container] = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    return container


def backup_variables() -> set[str]:
    """The variables only the backup commands use (src/ops/config.py's BackupSettings, with
    the common.settings classes it reads through, such as MySQLSettings)."""
    tree = ast.parse((ROOT / "src/ops/config.py").read_text())
    shared = shared_settings_names()
    found = [names_read(n, shared) for n in tree.body
             if isinstance(n, ast.ClassDef) and n.name == "BackupSettings"]
    return set().union(*found)


@pytest.mark.parametrize("overlay", DEPLOYABLE)
def test_every_variable_the_sweep_reads_is_provided(rendered, overlay):
    objects = rendered[overlay]
    container = sweep_container(objects)
    assert container["command"][:3] == ["python3", "-m", "ops"]
    # the backup's settings (read at start by every command, all with defaults) are not the
    # sweep's concern
    missing = (variables_read("ops") - LEFT_TO_DEFAULT - backup_variables()
               - container_env(objects, container))
    assert not missing, f"{overlay}: the sweep reads {sorted(missing)} but nothing provides them"


@pytest.mark.parametrize("overlay", DEPLOYABLE)
def test_every_variable_the_backup_reads_is_provided(rendered, overlay):
    objects = rendered[overlay]
    container = sweep_container(objects, BACKUP)
    assert container["command"] == ["python3", "-m", "ops", "backup", "--verify"]
    needed = backup_variables() | {"MONGODB_URI", "MONGODB_DB", "LOG_LEVEL"}
    assert {"BACKUP_DIR", "BACKUP_KEEP", "MYSQL_HOST", "MYSQL_PASSWORD", "MYSQL_DB"} <= needed
    missing = needed - BACKUP_LEFT_TO_DEFAULT - container_env(objects, container)
    assert not missing, f"{overlay}: the backup reads {sorted(missing)} but nothing provides them"


def test_backup_writes_to_its_own_volume_and_reads_auths_database(rendered):
    objects = rendered["minikube"]
    [cronjob] = find(objects, "CronJob", BACKUP)
    spec = cronjob["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["startingDeadlineSeconds"] > 0 and spec["jobTemplate"]["spec"]["backoffLimit"] >= 1
    minute, hour, *rest = spec["schedule"].split()
    assert minute.isdigit() and hour.isdigit() and rest == ["*", "*", "*"], "nightly"
    pod = spec["jobTemplate"]["spec"]["template"]["spec"]
    [config] = find(objects, "ConfigMap", "backup-config")
    mounts = {m["mountPath"]: m["name"] for m in sweep_container(objects, BACKUP)["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    claim = volumes[mounts[config["data"]["BACKUP_DIR"]]]["persistentVolumeClaim"]["claimName"]
    [pvc] = find(objects, "PersistentVolumeClaim", claim)
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert pod["securityContext"]["fsGroup"] == pod["securityContext"]["runAsUser"], "writable"
    # the database MariaDB creates, the one the read-only user may read, the one dumped
    [mysql] = find(objects, "StatefulSet", "mysql")
    mysql_env = {e["name"]: e.get("value") for e in
                 mysql["spec"]["template"]["spec"]["containers"][0]["env"]}
    [init] = find(objects, "Job", "mysql-init-users")
    init_env = {e["name"]: e.get("value") for e in
                init["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert config["data"]["MYSQL_DB"] == mysql_env["MARIADB_DATABASE"] == init_env["MYSQL_DB"]
    assert config["data"]["MYSQL_HOST"] == init_env["MYSQL_HOST"] == "mysql"
    assert find(objects, "Service", config["data"]["MYSQL_HOST"])
    assert config["data"]["MYSQL_USER"] == "backup"


def test_restore_job_finds_what_it_names_in_the_overlay(rendered):
    """The restore Job is created by hand, outside kustomize: the Secret, ConfigMap, volume,
    ServiceAccount and image it names must exist in the deployed overlay under those names."""
    objects = rendered["minikube"]
    [job] = [d for d in yaml.safe_load_all(RESTORE_JOB.read_text()) if d]
    assert "namespace" not in job["metadata"], "created with kubectl -n"
    pod = job["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["command"] == ["python3", "-m", "ops", "restore", "$(RESTORE_SET)",
                                    "--force"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["RESTORE_SET"] == "@SET@" and env["MYSQL_USER"] == "auth_user"
    names = container_env(objects, container)  # the ConfigMap and Secret exist, unhashed
    assert {"MONGODB_URI", "MYSQL_PASSWORD", "BACKUP_DIR", "MYSQL_DB"} <= names
    [config] = find(objects, "ConfigMap", "backup-config")
    [backups] = [v for v in pod["volumes"] if "persistentVolumeClaim" in v]
    [mount] = [m for m in container["volumeMounts"] if m["name"] == backups["name"]]
    assert mount["mountPath"] == config["data"]["BACKUP_DIR"]
    assert find(objects, "PersistentVolumeClaim", backups["persistentVolumeClaim"]["claimName"])
    assert find(objects, "ServiceAccount", pod["serviceAccountName"])
    assert container["image"] == sweep_container(objects, BACKUP)["image"]
    assert job["spec"]["template"]["metadata"]["labels"]["app"] == "backup-restore"


def test_config_maps_set_only_what_their_program_reads(rendered):
    """A key nobody reads is a setting an operator changes to no effect."""
    objects = rendered["minikube"]
    programs = {f"{s}-config": s for s in SERVICES} | {"ops-config": "ops",
                                                         "backup-config": "ops"}
    assert {c["metadata"]["name"] for c in find(objects, "ConfigMap")} >= programs.keys()
    for name, program in programs.items():
        [config] = find(objects, "ConfigMap", name)
        unread = set(config["data"]) - variables_read(program)
        assert not unread, f"{name} sets {sorted(unread)}, which {program} never reads"


def test_shared_settings_agree_everywhere(rendered):
    objects = rendered["minikube"]
    for name in SHARED_SETTINGS:
        values = {c["metadata"]["name"]: c["data"][name] for c in find(objects, "ConfigMap")
                  if name in c.get("data", {})}
        assert len(values) >= 2 and len(set(values.values())) == 1, f"{name}: {values}"
    lifecycle = shared_settings_names()["LifecycleSettings"]
    assert set(SHARED_SETTINGS) >= lifecycle, "a new lifecycle setting belongs in SHARED_SETTINGS"
    for program in ("gateway", "converter", "ops"):
        assert lifecycle <= variables_read(program), program


def test_job_commands_run_modules_their_image_carries(rendered):
    """A Job or CronJob running `python3 -m MODULE` in a service's image: the image copies it."""
    checked = 0
    for owner, spec in pod_templates(rendered["minikube"]):
        for container in spec["containers"]:
            command = container.get("command", [])
            if "mp3converter/" not in container["image"] or command[:2] != ["python3", "-m"]:
                continue
            service = container["image"].split("mp3converter/")[1].split(":")[0]
            module = command[2].split(".")[0]
            dockerfile = (ROOT / "Dockerfile").read_text()
            assert module == service or (  # e.g. ops: copied, and kept for the gateway only
                f"COPY src/{module}/ " in dockerfile
                and f'if [ "$SERVICE" != {service} ]; then rm -rf src/{module}' in dockerfile), (
                f"{owner['metadata']['name']} runs {module} in the {service} image")
            assert (ROOT / "src" / module / "__main__.py").exists()
            checked += 1
    assert checked, "the sweep CronJob runs `python3 -m ops`"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_referenced_keys_and_objects_exist(rendered, overlay):
    objects = rendered[overlay]
    for owner, spec in pod_templates(objects):
        for container in spec["containers"]:
            container_env(objects, container)
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef") or env.get(
                    "valueFrom", {}).get("configMapKeyRef")
                if ref:
                    kind = "Secret" if "secretKeyRef" in env["valueFrom"] else "ConfigMap"
                    [obj] = find(objects, kind, ref["name"])
                    assert ref["key"] in data_keys(obj), f"{owner['metadata']['name']}: {ref}"
        if spec.get("serviceAccountName"):
            assert find(objects, "ServiceAccount", spec["serviceAccountName"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_services_select_pods_and_ports_agree(rendered, overlay):
    objects = rendered[overlay]
    for service in find(objects, "Service"):
        selector = service["spec"]["selector"]
        targets = [spec for owner, spec in pod_templates(objects)
                   if owner["kind"] in ("Deployment", "StatefulSet")
                   and selector.items() <= owner["spec"]["template"]["metadata"]["labels"].items()]
        name = service['metadata']['name']
        assert len(targets) == 1, f"{overlay}: Service {name} selects {len(targets)} workloads"
        if overlay == "podman":
            continue  # hostNetwork: no containerPorts there
        ports = {p.get("name"): p["containerPort"] for c in targets[0]["containers"]
                 for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports, f"{service['metadata']['name']}: {port}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_workload_selectors_match_their_labels(rendered, overlay):
    for owner, _ in pod_templates(rendered[overlay]):
        if owner["kind"] in ("Deployment", "StatefulSet"):
            labels = owner["spec"]["template"]["metadata"]["labels"]
            assert owner["spec"]["selector"]["matchLabels"].items() <= labels.items()


@pytest.mark.parametrize("overlay", ["minikube"])
def test_http_probes_and_ports_agree_with_config(rendered, overlay):
    objects = rendered[overlay]
    for service, port in HTTP_SERVICES.items():
        [deployment] = find(objects, "Deployment", service)
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        [config] = find(objects, "ConfigMap", f"{service}-config")
        assert config["data"]["PORT"] == str(port)
        assert container["ports"] == [{"name": "http", "containerPort": port},
                                      {"name": "metrics", "containerPort": 9100}]
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        [svc] = find(objects, "Service", service)
        assert svc["spec"]["ports"][0]["port"] == port


@pytest.mark.parametrize("overlay", DEPLOYABLE)
def test_every_service_names_its_metrics_port(rendered, overlay):
    """Prometheus finds each pod's metrics by the port name `metrics`, never the public one."""
    objects = rendered[overlay]
    for service in SERVICES:
        [deployment] = find(objects, "Deployment", service)
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        [config] = find(objects, "ConfigMap", f"{service}-config")
        ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
        assert ports.get("metrics") == int(config["data"]["METRICS_PORT"]), service
        assert ports["metrics"] != HTTP_SERVICES.get(service)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_serves_its_metrics_on_every_interface_of_its_pod(rendered, overlay):
    """The metrics server binds HOST (as the HTTP server does): a pod is scraped on its own
    address, so HOST must be every interface there, not the loopback the code could be told."""
    objects = rendered[overlay]
    for service in SERVICES:
        [deployment] = find(objects, "Deployment", service)
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        [config] = find(objects, "ConfigMap", f"{service}-config")
        assert "HOST" not in {e["name"] for e in container.get("env", [])}, service
        assert config["data"].get("HOST") == "0.0.0.0", service


def test_consumers_probe_their_heartbeat(rendered):
    objects = rendered["minikube"]
    for service in ("converter", "notification"):
        [deployment] = find(objects, "Deployment", service)
        spec = deployment["spec"]["template"]["spec"]
        [container] = spec["containers"]
        for probe in ("livenessProbe", "readinessProbe"):
            command = container[probe]["exec"]["command"]
            assert command == ["python3", "-m", "common.heartbeat", "check", service]
        [config] = find(objects, "ConfigMap", f"{service}-config")
        assert config["data"]["HEARTBEAT_FILE"].startswith("/tmp/")
        assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
        assert spec["terminationGracePeriodSeconds"] > int(config["data"]["SHUTDOWN_GRACE_SECONDS"])


@pytest.mark.parametrize("overlay", DEPLOYABLE)
def test_every_pod_is_hardened(rendered, overlay):
    for owner, spec in pod_templates(rendered[overlay]):
        name = f"{owner['kind']}/{owner['metadata']['name']}"
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert spec["automountServiceAccountToken"] is False, name
        assert not spec.get("hostNetwork") and not spec.get("hostPID"), name
        for c in [*spec.get("initContainers", []), *spec["containers"]]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc.get("privileged") is not True, name
            assert sc["capabilities"]["drop"] == ["ALL"], name
            assert not sc["capabilities"].get("add"), name
            assert {"requests", "limits"} <= c["resources"].keys(), name


# Deployment -> replicas; with the RabbitMQ cluster every service runs twice (no single pod of
# any kind whose loss stops the suite) and RabbitMQ three times
REPLICAS = {
    "minikube": {"auth": 2, "gateway": 2, "converter": 2, "notification": 1, "rabbitmq": 1},
    CLUSTER: {"auth": 2, "gateway": 2, "converter": 2, "notification": 2, "rabbitmq": 3},
}


@pytest.mark.parametrize("overlay", REPLICAS)
def test_replicas(rendered, overlay):
    for name, count in REPLICAS[overlay].items():
        [workload] = (find(rendered[overlay], "Deployment", name)
                      or find(rendered[overlay], "StatefulSet", name))
        assert workload["spec"]["replicas"] == count, name


def fewest_pods(objects: list[dict], owner: dict) -> int:
    """The fewest pods a workload runs: its replicas, or its autoscaler's minimum."""
    name = owner["metadata"]["name"]
    scalers = [h["spec"]["minReplicas"] for h in find(objects, "HorizontalPodAutoscaler")
               if h["spec"]["scaleTargetRef"]["name"] == name]
    scalers += [s["spec"]["minReplicaCount"] for s in find(objects, "ScaledObject")
                if s["spec"]["scaleTargetRef"]["name"] == name]
    return min(scalers) if scalers else owner["spec"]["replicas"]


@pytest.mark.parametrize("overlay", DEPLOYABLE)
def test_disruption_budgets_fit_the_replicas(rendered, overlay):
    """A drain can always evict (never a budget that blocks it), and a workload of two or more
    pods keeps at least one running (RabbitMQ: a majority of its nodes)."""
    objects = rendered[overlay]
    budgets = find(objects, "PodDisruptionBudget")
    covered = set()
    for pdb in budgets:
        spec, name = pdb["spec"], pdb["metadata"]["name"]
        [owner] = [o for o, _ in pod_templates(objects) if o["kind"] in ("Deployment",
                   "StatefulSet") and selects(spec["selector"], pod_labels(o))]
        pods = fewest_pods(objects, owner)
        assert ("minAvailable" in spec) != ("maxUnavailable" in spec), name
        down = spec.get("maxUnavailable", pods - spec.get("minAvailable", 0))
        assert isinstance(down, int), f"{name}: a number, not a percentage"
        assert down >= 1, f"{name}: {pods} pod(s), the budget blocks every drain"
        if pods >= 2:
            assert pods - down >= 1, f"{name}: a drain may stop all {pods} pods"
        if owner["metadata"]["name"] == "rabbitmq":
            assert pods - down > pods // 2, f"{name}: a drain must leave a majority of nodes"
        covered.add(owner["metadata"]["name"])
    assert covered >= {*SERVICES, *(["rabbitmq"] if overlay == CLUSTER else [])}


def test_sweep_never_overlaps_itself(rendered):
    """From Kubernetes' side: no run while one is active, none started late into the next one's
    slot, a hung run stopped, and no second pod of a run while the first is terminating."""
    [cronjob] = find(rendered["minikube"], "CronJob", SWEEP)
    spec = cronjob["spec"]
    minutes = int(re.fullmatch(r"\*/(\d+) \* \* \* \*", spec["schedule"]).group(1))
    assert spec["concurrencyPolicy"] == "Forbid"
    assert 0 < spec["startingDeadlineSeconds"] < minutes * 60
    job = spec["jobTemplate"]["spec"]
    assert job["activeDeadlineSeconds"] > 0
    assert job["podReplacementPolicy"] == "Failed"
    assert job.get("parallelism", 1) == 1 and job.get("completions", 1) == 1
    assert job["template"]["spec"]["restartPolicy"] == "Never"


def test_overlay_images_are_the_ones_make_images_builds(rendered):
    out = subprocess.run(["make", "-s", "-f", "mk/kubernetes.mk", "print-images"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60, check=True)
    built = set(out.stdout.split())
    assert len(built) == len(SERVICES)
    for overlay in ("minikube", "minikube-keda"):
        used = {c["image"] for _, spec in pod_templates(rendered[overlay])
                for c in spec["containers"] if "mp3converter/" in c["image"]}
        assert used == built, overlay
    podman_images = {c["image"] for _, spec in pod_templates(rendered["podman"])
                     for c in spec["containers"]}
    assert podman_images == {f"localhost/{image}" for image in built}


def test_secret_generator_values_are_not_committed():
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "manifests/overlays/minikube/secrets/auth.env"], cwd=ROOT)
    assert ignored.returncode == 0, "secrets/*.env must be gitignored"


def test_minikube_secrets_are_consistent(rendered):
    objects = rendered["minikube"]

    def secret(prefix: str) -> dict[str, str]:
        [obj] = [o for o in objects if o["kind"] == "Secret"
                 and o["metadata"]["name"].startswith(prefix + "-")]
        return {k: base64.b64decode(v).decode() for k, v in obj["data"].items()}

    rabbit, mongo = secret("rabbitmq-secrets"), secret("mongodb-secrets")
    for service in ("gateway", "converter", "notification", "ops"):
        values = secret(f"{service}-secrets")
        assert f":{rabbit['RABBITMQ_DEFAULT_PASS']}@rabbitmq:" in values["RABBITMQ_URL"]
        password = mongo[f"MONGODB_{service.upper()}_PASSWORD"]
        assert f"//{service}:{password}@mongodb:" in values["MONGODB_URI"]
    # the backup reads as MariaDB's `backup` (made by mysql-init-users with mysql-secrets'
    # password); the restore writes as auth's own user; neither gets the broker
    mysql, auth = secret("mysql-secrets"), secret("auth-secrets")
    for user, mysql_password in (("backup", mysql["MARIADB_BACKUP_PASSWORD"]),
                                 ("restore", auth["MYSQL_PASSWORD"])):
        values = secret(f"{user}-secrets") if user == "backup" else {
            k: base64.b64decode(v).decode() for k, v in
            find(objects, "Secret", "restore-secrets")[0]["data"].items()}
        assert values.keys() == {"MONGODB_URI", "MYSQL_PASSWORD"}, user
        assert values["MYSQL_PASSWORD"] == mysql_password, user
        password = mongo[f"MONGODB_{user.upper()}_PASSWORD"]
        assert f"//{user}:{password}@mongodb:" in values["MONGODB_URI"], user
    assert mysql["MARIADB_BACKUP_PASSWORD"] not in (mysql["MARIADB_ROOT_PASSWORD"],
                                                   auth["MYSQL_PASSWORD"])


def test_compose_file_matches_the_manifests(rendered):
    compose = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())
    services = compose["services"]
    objects = rendered["minikube"]
    out = subprocess.run(["make", "-s", "-f", "mk/kubernetes.mk", "print-images"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60, check=True)
    for service, image in zip(SERVICES, out.stdout.split(), strict=True):
        entry = services[service]
        assert entry["image"] == image
        assert entry["build"] == {"context": ".", "dockerfile": "Dockerfile",
                                  "args": {"SERVICE": service}}
        [config] = find(objects, "ConfigMap", f"{service}-config")
        env = dict(config["data"])
        for name in COMPOSE_DIFFERS.get(service, ()):
            env[name] = entry["environment"][name]
        assert entry["environment"] == env, service
        for env_file in entry["env_file"]:
            assert (ROOT / f"{env_file}.example").exists(), env_file
        assert entry["read_only"] is True and entry["user"].startswith("10001")
    sweep, [config] = services[SWEEP], find(objects, "ConfigMap", "ops-config")
    assert sweep["environment"] == config["data"]
    assert sweep["env_file"] == ["manifests/overlays/minikube/secrets/ops.env"]
    assert sweep["image"] == services["gateway"]["image"] == sweep_container(objects)["image"]
    assert sweep["build"] == services["gateway"]["build"]
    assert sweep["read_only"] is True and sweep["user"].startswith("10001")
    [cronjob] = find(objects, "CronJob", SWEEP)
    minutes = re.fullmatch(r"\*/(\d+) \* \* \* \*", cronjob["spec"]["schedule"]).group(1)
    [loop] = sweep["command"]
    assert "python3 -m ops sweep" in loop and f"sleep {int(minutes) * 60} " in loop
    for name, entry in services.items():
        for dependency in entry.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown {dependency}"
    top = {k for k in compose if not k.startswith("x-")}
    assert top <= {"name", "services", "volumes", "networks", "secrets", "configs"}


def test_docker_compose_accepts_the_file():
    """`docker compose config` where the compose plugin exists; the checks above otherwise."""
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30) \
        if shutil.which("docker") else None
    if not probe or probe.returncode != 0:
        pytest.skip("no docker compose plugin here; the compose file is checked structurally")
    ensure_minikube_secrets()
    out = subprocess.run(["docker", "compose", "-f", "docker-compose.yaml", "config", "-q"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
