"""RabbitMQ as three nodes (components/rabbitmq-cluster, overlay minikube-rabbitmq-cluster):
they find each other, run under the names they find, share a cookie, may read nothing but their
Endpoints, stay hardened, and every client lists all three."""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

import pytest

from tests.manifests.helpers import (
    CLUSTER,
    container_env_value,
    data_values,
    find,
    pod_labels,
    pod_templates,
    selects,
)

pytestmark = pytest.mark.manifests

NODES = 3
# every program that talks to the broker: its Deployment or CronJob, and its container
CLIENTS = {("Deployment", "gateway"): "gateway", ("Deployment", "converter"): "converter",
           ("Deployment", "notification"): "notification", ("CronJob", "ops-sweep"): "sweep"}
# where the peer discovery plugin reads its credentials (its defaults)
ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


@pytest.fixture(scope="module")
def objects(rendered) -> list[dict]:
    return rendered[CLUSTER]


def broker(objects: list[dict]) -> tuple[dict, dict, dict]:
    """The StatefulSet, its pod spec and its container."""
    [statefulset] = find(objects, "StatefulSet", "rabbitmq")
    spec = statefulset["spec"]["template"]["spec"]
    [container] = spec["containers"]
    return statefulset, spec, container


def config_file(objects: list[dict], container: dict, path: str) -> str:
    """The text of a file the broker's container mounts from a ConfigMap key."""
    _, spec, _ = broker(objects)
    [mount] = [m for m in container["volumeMounts"] if m["mountPath"] == path]
    [volume] = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    return data_values(objects, "ConfigMap", volume["configMap"]["name"])[mount["subPath"]]


def cluster_conf(objects: list[dict]) -> dict[str, str]:
    """conf.d/30-cluster.conf as key -> value."""
    _, _, container = broker(objects)
    text = config_file(objects, container, "/etc/rabbitmq/conf.d/30-cluster.conf")
    pairs = [line.split("=", 1) for line in text.splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    return {key.strip(): value.strip() for key, value in pairs}


def node_name(container: dict, pod: str, namespace: str) -> str:
    """RABBITMQ_NODENAME as the kubelet expands it for ``pod`` (earlier variables only)."""
    fields = {"metadata.name": pod, "metadata.namespace": namespace}
    seen: dict[str, str] = {}
    for env in container["env"]:
        if "value" in env:
            seen[env["name"]] = re.sub(r"\$\((\w+)\)", lambda m: seen[m.group(1)], env["value"])
        elif "fieldRef" in env.get("valueFrom", {}):
            seen[env["name"]] = fields[env["valueFrom"]["fieldRef"]["fieldPath"]]
    return seen["RABBITMQ_NODENAME"]


def test_three_nodes_start_together_spread_over_kubernetes_nodes(objects):
    statefulset, spec, _ = broker(objects)
    assert statefulset["spec"]["replicas"] == NODES
    assert statefulset["spec"]["podManagementPolicy"] == "Parallel"
    [service] = find(objects, "Service", statefulset["spec"]["serviceName"])
    assert service["spec"]["clusterIP"] == "None", "headless: one DNS name per node"
    assert service["spec"]["publishNotReadyAddresses"] is True, "peers resolve before ready"
    [term] = spec["affinity"]["podAntiAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert selects(term["podAffinityTerm"]["labelSelector"], pod_labels(statefulset))
    assert "requiredDuringSchedulingIgnoredDuringExecution" not in spec["affinity"][
        "podAntiAffinity"], "one minikube node must still run all three"


def test_peer_discovery_finds_the_nodes_by_the_names_they_run_as(objects, rendered):
    statefulset, _, container = broker(objects)
    plugins = set(re.findall(r"\w+", config_file(
        objects, container, "/etc/rabbitmq/enabled_plugins")))
    single = rendered["minikube"]
    single_plugins = set(re.findall(r"\w+", config_file(
        single, broker(single)[2], "/etc/rabbitmq/enabled_plugins")))
    assert plugins == single_plugins | {"rabbitmq_peer_discovery_k8s"}, "the others kept"
    conf = cluster_conf(objects)
    service = statefulset["spec"]["serviceName"]
    namespace = statefulset["metadata"]["namespace"]
    assert conf["cluster_formation.peer_discovery_backend"] == "k8s"
    assert conf["cluster_formation.k8s.service_name"] == service
    assert conf["cluster_formation.k8s.address_type"] == "hostname"
    suffix = conf["cluster_formation.k8s.hostname_suffix"]
    assert suffix == f".{service}.{namespace}.svc.cluster.local"
    env = {e["name"]: e for e in container["env"]}
    assert env["RABBITMQ_USE_LONGNAME"]["value"] == "true"
    for n in range(NODES):
        pod = f"{statefulset['metadata']['name']}-{n}"
        # the name the plugin builds (the Endpoints' hostname + suffix) is the node's own
        assert node_name(container, pod, namespace) == f"rabbit@{pod}{suffix}"
    assert int(conf["cluster_formation.target_cluster_size_hint"]) == NODES
    waited = (int(conf["cluster_formation.discovery_retry_limit"])
              * int(conf["cluster_formation.discovery_retry_interval"]) / 1000)
    assert waited >= 60, "time for the peers to start before a node starts alone"
    assert conf["cluster_partition_handling"] == "pause_minority"
    assert conf["cluster_formation.node_cleanup.only_log_warning"] == "true"


def test_quorum_queues_keep_a_member_on_every_node(objects):
    conf = cluster_conf(objects)
    assert conf["quorum_queue.continuous_membership_reconciliation.enabled"] == "true"
    assert int(conf["quorum_queue.continuous_membership_reconciliation.target_group_size"]) == (
        NODES)
    assert conf["queue_leader_locator"] == "balanced"


def test_only_the_broker_gets_a_token_which_may_only_get_its_endpoints(objects):
    statefulset, spec, container = broker(objects)
    [account] = find(objects, "ServiceAccount", spec["serviceAccountName"])
    assert account["automountServiceAccountToken"] is False
    assert spec["automountServiceAccountToken"] is False
    [mount] = [m for m in container["volumeMounts"] if m["mountPath"] == ACCOUNT_DIR]
    assert mount["readOnly"] is True
    [volume] = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    sources = volume["projected"]["sources"]
    [token] = [s["serviceAccountToken"] for s in sources if "serviceAccountToken" in s]
    assert token["path"] == "token" and 600 <= token["expirationSeconds"] <= 3600
    [ca] = [s["configMap"] for s in sources if "configMap" in s]
    assert ca == {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}
    [namespace] = [s["downwardAPI"] for s in sources if "downwardAPI" in s]
    assert namespace["items"] == [{"path": "namespace",
                                   "fieldRef": {"fieldPath": "metadata.namespace"}}]
    # no other pod holds a token
    for owner, pod in pod_templates(objects):
        tokens = [v for v in pod.get("volumes", []) for s in v.get("projected", {}).get(
            "sources", []) if "serviceAccountToken" in s]
        assert not tokens or owner is statefulset, owner["metadata"]["name"]
    # one Role, bound to the broker's account alone: `get` on its Service's Endpoints
    assert not find(objects, "ClusterRole") and not find(objects, "ClusterRoleBinding")
    [role], [binding] = find(objects, "Role"), find(objects, "RoleBinding")
    assert role["rules"] == [{"apiGroups": [""], "resources": ["endpoints"],
                              "resourceNames": [statefulset["spec"]["serviceName"]],
                              "verbs": ["get"]}]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": role["metadata"]["name"]}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account["metadata"]["name"],
                                    "namespace": statefulset["metadata"]["namespace"]}]


def test_nodes_share_one_erlang_cookie_only_they_read(objects):
    statefulset, _, container = broker(objects)
    assert not [e for e in container.get("env", []) if e["name"] == "RABBITMQ_ERLANG_COOKIE"], (
        "from the Secret, never a literal")
    cookie = container_env_value(objects, container, "RABBITMQ_ERLANG_COOKIE")
    assert cookie and len(cookie) >= 32 and cookie != "change-me"
    [secret] = [s["secretRef"]["name"] for s in container["envFrom"] if "secretRef" in s]
    for owner, pod in pod_templates(objects):
        if owner is statefulset:
            continue
        for other in [*pod.get("initContainers", []), *pod["containers"]]:
            refs = {s["secretRef"]["name"] for s in other.get("envFrom", []) if "secretRef" in s}
            refs |= {e["valueFrom"]["secretKeyRef"]["name"] for e in other.get("env", [])
                     if "secretKeyRef" in e.get("valueFrom", {})}
            assert secret not in refs, f"{owner['metadata']['name']} reads the cookie's Secret"


def test_every_client_lists_the_three_nodes(objects):
    statefulset, _, _ = broker(objects)
    service = statefulset["spec"]["serviceName"]
    namespace = statefulset["metadata"]["namespace"]
    suffix = cluster_conf(objects)["cluster_formation.k8s.hostname_suffix"]
    _, _, container = broker(objects)
    user = container_env_value(objects, container, "RABBITMQ_DEFAULT_USER")
    password = container_env_value(objects, container, "RABBITMQ_DEFAULT_PASS")
    pods = [f"{statefulset['metadata']['name']}-{n}" for n in range(NODES)]
    lists = set()
    for (kind, name), container_name in CLIENTS.items():
        [owner] = find(objects, kind, name)
        [client] = [c for _, pod in pod_templates([owner]) for c in pod["containers"]
                    if c["name"] == container_name]
        value = container_env_value(objects, client, "RABBITMQ_URL")
        urls = [urlsplit(u) for u in value.split(",")]
        hosts = [u.hostname for u in urls]
        assert hosts == [f"{pod}.{service}" for pod in pods], f"{name}: {hosts}"
        for url in urls:
            assert url.scheme == "amqp" and url.port == 5672 and url.path == "/%2F", name
            assert (unquote(url.username), unquote(url.password)) == (user, password), name
            # the short name, completed by the pod's search domain, is the node's own host
            assert f"{url.hostname}.{namespace}.svc.cluster.local" in {
                f"{pod}{suffix}" for pod in pods}
        lists.add(value)
    assert len(lists) == 1, "every client the same list"


def test_single_node_overlay_keeps_one_address(rendered):
    """Without the component the clients keep their own Secret's single address."""
    objects = rendered["minikube"]
    [statefulset] = find(objects, "StatefulSet", "rabbitmq")
    assert statefulset["spec"]["replicas"] == 1 and not find(objects, "Role")
    for (kind, name), container_name in CLIENTS.items():
        [owner] = find(objects, kind, name)
        [client] = [c for _, pod in pod_templates([owner]) for c in pod["containers"]
                    if c["name"] == container_name]
        url = urlsplit(container_env_value(objects, client, "RABBITMQ_URL"))
        assert url.hostname == "rabbitmq" and "," not in url.netloc, name


def test_a_node_stops_only_once_its_queues_keep_their_majority(objects):
    _, spec, container = broker(objects)
    assert container["livenessProbe"]["exec"]["command"] == ["rabbitmq-diagnostics", "-q", "ping"]
    assert "check_port_connectivity" in container["readinessProbe"]["exec"]["command"]
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[:3] == ["rabbitmq-upgrade", "-q", "await_online_quorum_plus_one"]
    wait = int(command[command.index("-t") + 1])
    assert wait + 30 <= spec["terminationGracePeriodSeconds"], "then the node's own shutdown"
    [pdb] = find(objects, "PodDisruptionBudget", "rabbitmq")
    assert pdb["spec"] == {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "rabbitmq"}}}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert (ports["epmd"], ports["cluster-links"], ports["amqp"]) == (4369, 25672, 5672)
