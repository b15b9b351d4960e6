"""Each pod reaches only its dependencies and DNS, and is reached only by the pods that need it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.manifests.helpers import (
    CLUSTER,
    COMPONENTS,
    DEPLOYABLE,
    MANIFESTS,
    combination_dir,
    find,
    kustomize,
    pod_labels,
    pod_templates,
    selects,
)

pytestmark = pytest.mark.manifests

AUTH, MONGODB, RABBITMQ = ("auth", 5000), ("mongodb", 27017), ("rabbitmq", 5672)
MYSQL, SMTP = ("mysql", 3306), ("mailpit", 1025)
PUSHGATEWAY = ("pushgateway", 9091)
# webhook endpoints: HTTP and HTTPS on public addresses, never the cluster's or the node's
INTERNET = {("internet", 80), ("internet", 443)}
PUBLIC_ONLY = {
    "0.0.0.0/0": {"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
                  "172.16.0.0/12", "192.0.0.0/24", "192.168.0.0/16", "198.18.0.0/15",
                  "224.0.0.0/4", "240.0.0.0/4"},
    "::/0": {"::/127", "::ffff:0:0/96", "64:ff9b::/96", "2002::/16", "fc00::/7", "fe80::/10",
             "ff00::/8"},
}
# pod (its `app` label) -> the (pod, port) it talks to; DNS comes on top for every pod
DEPENDENCIES = {
    "gateway": {AUTH, MONGODB, RABBITMQ},
    "ops-sweep": {MONGODB, RABBITMQ, AUTH},  # the sweep CronJob; auth lists deleted accounts
    "auth": {MYSQL, SMTP},  # account verification emails
    "auth-init-db": {MYSQL},
    "mongodb-init-users": {MONGODB},
    "mysql-init-users": {MYSQL},  # makes MariaDB's read-only user `backup`
    "backup": {MONGODB, MYSQL},  # the backup CronJob (components/backup)
    "converter": {MONGODB, RABBITMQ},
    # asks auth whether an address is verified; sends webhooks
    "notification": {MONGODB, RABBITMQ, SMTP, AUTH, *INTERNET},
    "mysql": set(),
    "mongodb": set(),
    "rabbitmq": set(),
    "mailpit": set(),
}
# traffic from outside the namespace: (namespace, pod, port)
FROM_OUTSIDE = {("ingress-nginx", "gateway", 8080), ("keda", "rabbitmq", 5672),
                # Prometheus scrapes the metrics ports (components/monitoring)
                ("monitoring", "rabbitmq", 15692),
                *{("monitoring", app, 9100) for app in ("auth", "gateway", "converter",
                                                        "notification")}}
DNS = {("UDP", 53), ("TCP", 53)}
# RabbitMQ as three nodes (components/rabbitmq-cluster): each node reaches the others on epmd and
# the clustering port, and the Kubernetes API for peer discovery: the one address a policy names
# (an ipBlock of that single address: minikube's API server, docker driver)
API_SERVER = ("kube-apiserver", 8443)
API_SERVER_CIDR = "192.168.49.2/32"
PEERS = {("rabbitmq", 4369), ("rabbitmq", 25672)}
CLUSTER_DEPENDENCIES = {**DEPENDENCIES, "rabbitmq": PEERS | {API_SERVER}}
# with the monitoring component: the backup pushes its outcome to the Pushgateway, which
# Prometheus scrapes (that render has every component: the RabbitMQ cluster's too)
WITH_MONITORING = {**CLUSTER_DEPENDENCIES, "backup": DEPENDENCIES["backup"] | {PUSHGATEWAY},
                   "pushgateway": set()}
MONITORING_FROM_OUTSIDE = FROM_OUTSIDE | {("monitoring", "pushgateway", 9091)}
RESTORE_JOB = MANIFESTS / "components" / "backup" / "restore-job.yaml"


def policies(objects: list[dict], direction: str, labels: dict[str, str]) -> list[dict]:
    """The NetworkPolicies of that direction (Ingress or Egress) that select a pod."""
    return [p for p in find(objects, "NetworkPolicy")
            if direction in p["spec"].get("policyTypes", [])
            and selects(p["spec"]["podSelector"], labels)]


def apps_selected(objects: list[dict], selector: dict) -> set[str]:
    """The `app` of every workload whose pods a podSelector picks (none is an error)."""
    apps = {pod_labels(owner)["app"] for owner, _ in pod_templates(objects)
            if selects(selector, pod_labels(owner))}
    assert apps, f"{selector} selects no pod"
    return apps


def ports_of(rule: dict, where: str) -> set[tuple[str, int]]:
    """(protocol, port) a rule allows; a rule without ports would allow every port."""
    assert rule.get("ports"), f"{where}: a rule without ports allows every port"
    return {(p.get("protocol", "TCP"), p["port"]) for p in rule["ports"]}


def is_kube_dns(peer: dict) -> bool:
    return peer.get("namespaceSelector") == {
        "matchLabels": {"kubernetes.io/metadata.name": "kube-system"}} and peer.get(
        "podSelector") == {"matchLabels": {"k8s-app": "kube-dns"}}


def egress_of(objects: list[dict], app: str, labels: dict[str, str]) -> tuple[set, set]:
    """((pod, port) in the namespace, (protocol, port) to kube-dns) a pod may reach."""
    selected = policies(objects, "Egress", labels)
    assert selected, f"no egress policy selects {app}: it could reach anything"
    inside, dns = set(), set()
    for policy in selected:
        where = f"{policy['metadata']['name']} ({app})"
        for rule in policy["spec"].get("egress", []):
            assert rule.get("to"), f"{where}: a rule without `to` allows every destination"
            ports = ports_of(rule, where)
            for peer in rule["to"]:
                if "ipBlock" in peer and peer["ipBlock"]["cidr"] in PUBLIC_ONLY:
                    block = peer["ipBlock"]
                    assert set(block.get("except", [])) == PUBLIC_ONLY[block["cidr"]], (
                        f"{where}: the internet without every private and special range")
                    assert ports == {("TCP", 80), ("TCP", 443)}, where
                    inside |= {("internet", port) for _, port in ports}
                    continue
                if "ipBlock" in peer:
                    assert peer == {"ipBlock": {"cidr": API_SERVER_CIDR}}, (
                        f"{where}: no address but the Kubernetes API server's")
                    assert {proto for proto, _ in ports} == {"TCP"}, where
                    inside |= {(API_SERVER[0], port) for _, port in ports}
                    continue
                if is_kube_dns(peer):
                    dns |= ports
                    continue
                assert "namespaceSelector" not in peer, f"{where}: {peer} leaves the namespace"
                assert {proto for proto, _ in ports} == {"TCP"}, where
                inside |= {(target, port) for target in apps_selected(objects, peer["podSelector"])
                           for _, port in ports}
    return inside, dns


def ingress_of(objects: list[dict], app: str, labels: dict[str, str]) -> tuple[set, set]:
    """((pod, port) in the namespace, (namespace, port) outside) that may reach a pod."""
    selected = policies(objects, "Ingress", labels)
    assert selected, f"no ingress policy selects {app}: anything could reach it"
    inside, outside = set(), set()
    for policy in selected:
        where = f"{policy['metadata']['name']} ({app})"
        for rule in policy["spec"].get("ingress", []):
            assert rule.get("from"), f"{where}: a rule without `from` admits everyone"
            ports = {port for _, port in ports_of(rule, where)}
            for peer in rule["from"]:
                assert "ipBlock" not in peer, where
                if "namespaceSelector" in peer:
                    assert "podSelector" not in peer, where
                    [namespace] = peer["namespaceSelector"]["matchLabels"].values()
                    outside |= {(namespace, port) for port in ports}
                else:
                    inside |= {(source, port) for source in apps_selected(
                        objects, peer["podSelector"]) for port in ports}
    return inside, outside


def workloads(objects: list[dict]) -> dict[str, dict[str, str]]:
    """app -> pod labels of every workload."""
    return {pod_labels(owner)["app"]: pod_labels(owner) for owner, _ in pod_templates(objects)}


@pytest.fixture(scope="module")
def every_component(tmp_path_factory) -> list[dict]:
    """base + infra + every component (monitoring's Pushgateway among them), rendered."""
    return kustomize(combination_dir(tmp_path_factory.mktemp("all"), COMPONENTS))


def renders(rendered, every_component) -> dict[str, tuple[list[dict], dict, set]]:
    """name -> (objects, DEPENDENCIES, FROM_OUTSIDE) for each render checked."""
    found = {o: (rendered[o], DEPENDENCIES, FROM_OUTSIDE) for o in DEPLOYABLE}
    found[CLUSTER] = (rendered[CLUSTER], CLUSTER_DEPENDENCIES, FROM_OUTSIDE)
    found["every-component"] = (every_component, WITH_MONITORING, MONITORING_FROM_OUTSIDE)
    return found


def check_egress(objects: list[dict], dependencies: dict) -> None:
    pods = workloads(objects)
    assert set(pods) == set(dependencies), "a new pod needs its line in DEPENDENCIES"
    for app, labels in pods.items():
        inside, dns = egress_of(objects, app, labels)
        assert inside == dependencies[app], f"{app} may reach {sorted(inside)}"
        assert dns == DNS, f"{app}: DNS over UDP and TCP 53, nothing else outside"


def check_ingress(objects: list[dict], dependencies: dict, from_outside: set) -> None:
    pods = workloads(objects)
    for app, labels in pods.items():
        inside, outside = ingress_of(objects, app, labels)
        wanted = {(client, port) for client, deps in dependencies.items()
                  for target, port in deps if target == app}
        assert inside == wanted, f"{app} admits {sorted(inside)}, its clients are {wanted}"
        assert outside == {(ns, port) for ns, target, port in from_outside if target == app}, app


@pytest.mark.parametrize("name", [*DEPLOYABLE, "every-component"])
def test_every_pod_reaches_only_its_dependencies_and_dns(rendered, every_component, name):
    objects, dependencies, _ = renders(rendered, every_component)[name]
    check_egress(objects, dependencies)


@pytest.mark.parametrize("name", [*DEPLOYABLE, "every-component"])
def test_every_pod_is_reached_only_by_the_pods_that_depend_on_it(rendered, every_component,
                                                                 name):
    objects, dependencies, from_outside = renders(rendered, every_component)[name]
    check_ingress(objects, dependencies, from_outside)


def test_backup_without_the_network_policies_component_still_reaches_what_it_needs(tmp_path):
    """The monitoring component's policy for the backup pods isolates them on its own: it must
    list all they need, or a cluster without components/network-policies loses its backups."""
    objects = kustomize(combination_dir(tmp_path, ("backup", "monitoring")))
    labels = workloads(objects)["backup"]
    inside, dns = egress_of(objects, "backup", labels)
    assert inside == WITH_MONITORING["backup"] and dns == DNS
    inside, outside = ingress_of(objects, "pushgateway", workloads(objects)["pushgateway"])
    assert inside == {("backup", 9091)} and outside == {("monitoring", 9091)}


def test_restore_job_reaches_only_the_two_databases(rendered):
    """The restore Job is created by hand (it is in no kustomization): with it added to the
    deployed overlay, it reaches MongoDB and MariaDB, and they admit it."""
    [job] = [d for d in yaml.safe_load_all(Path(RESTORE_JOB).read_text()) if d]
    objects = [*rendered["minikube"], job]
    check_egress(objects, {**DEPENDENCIES, "backup-restore": {MONGODB, MYSQL}})
    check_ingress(objects, {**DEPENDENCIES, "backup-restore": {MONGODB, MYSQL}}, FROM_OUTSIDE)


@pytest.mark.parametrize("overlay", DEPLOYABLE)
def test_dependency_ports_are_the_pods_container_ports(rendered, overlay):
    objects = rendered[overlay]
    ports = {pod_labels(owner)["app"]: {p["containerPort"] for c in spec["containers"]
                                        for p in c.get("ports", [])}
             for owner, spec in pod_templates(objects)}
    dependencies = CLUSTER_DEPENDENCIES if overlay == CLUSTER else DEPENDENCIES
    for app, deps in dependencies.items():
        for target, port in deps - {API_SERVER} - INTERNET:
            assert port in ports[target], f"{app} -> {target}:{port}: {target} listens on {ports}"


def test_mail_inbox_port_is_reachable_from_nowhere(rendered):
    objects = rendered["minikube"]
    inside, outside = ingress_of(objects, "mailpit", workloads(objects)["mailpit"])
    assert {port for _, port in inside | outside} == {1025}


def test_rabbitmq_nodes_reach_each_other_and_every_client_reaches_every_node(rendered):
    """The cluster's three pods share the labels the policies select: each node admits and
    reaches the others on 4369 and 25672 only, and each client reaches all three on 5672."""
    objects = rendered[CLUSTER]
    [statefulset] = find(objects, "StatefulSet", "rabbitmq")
    assert statefulset["spec"]["replicas"] == 3
    labels = pod_labels(statefulset)  # every node's
    inside, _ = egress_of(objects, "rabbitmq", labels)
    assert inside == PEERS | {API_SERVER}
    admitted, _ = ingress_of(objects, "rabbitmq", labels)
    assert {(app, port) for app, port in admitted if app == "rabbitmq"} == PEERS
    for client in ("gateway", "converter", "notification", "ops-sweep"):
        assert ("rabbitmq", 5672) in egress_of(objects, client, workloads(objects)[client])[0]
        assert (client, 5672) in admitted


def test_rabbitmq_cluster_without_the_network_policies_component_still_forms(tmp_path):
    """The cluster component's egress policy isolates the nodes on its own: it must hold all they
    need (peers, API server, DNS); no ingress policy of its own, so every client still gets in."""
    objects = kustomize(combination_dir(tmp_path, ("rabbitmq-cluster",)))
    labels = workloads(objects)["rabbitmq"]
    inside, dns = egress_of(objects, "rabbitmq", labels)
    assert inside == PEERS | {API_SERVER} and dns == DNS
    assert not policies(objects, "Ingress", labels)
    assert {p["metadata"]["name"] for p in find(objects, "NetworkPolicy")} == {
        "rabbitmq-cluster-egress"}
