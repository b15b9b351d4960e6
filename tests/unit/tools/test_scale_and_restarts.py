"""`make run SCALE=...`: replicas named, ported and parsed; the backoff between restarts."""

import os
from pathlib import Path

import pytest

from tools import devstack
from tools.processes import Process, RestartPolicy, Stack


def test_backoff_doubles_from_one_second_up_to_thirty():
    policy = RestartPolicy()
    delays, previous = [], None
    for _ in range(8):
        previous = policy.delay(previous, uptime=2.0)
        delays.append(previous)
    assert delays == [1, 2, 4, 8, 16, 30, 30, 30]


def test_backoff_starts_over_once_the_process_stayed_up_a_minute():
    policy = RestartPolicy()
    assert policy.delay(16.0, uptime=59.9) == 30
    assert policy.delay(30.0, uptime=60.0) == 1
    assert policy.delay(None, uptime=0.0) == 1


def test_backoff_policy_is_configurable():
    policy = RestartPolicy(initial=0.5, cap=1.5, reset_after=5)
    assert [policy.delay(p, 1) for p in (None, 0.5, 1.0, 1.5)] == [0.5, 1.0, 1.5, 1.5]
    assert policy.delay(1.5, 5) == 0.5


def test_scale_parses_spaces_and_commas():
    assert devstack.parse_scale("gateway=2 converter=3 notification=2") == {
        "gateway": 2, "converter": 3, "notification": 2}
    assert devstack.parse_scale(" gateway=2,converter=1 ") == {"gateway": 2, "converter": 1}
    assert devstack.parse_scale("auth=1") == {"auth": 1}
    assert devstack.parse_scale("") == {}


@pytest.mark.parametrize(("text", "message"), [
    ("gatway=2", "unknown service 'gatway'"),
    ("mongodb=2", "unknown service 'mongodb'"),
    ("gateway=0", "positive whole number"),
    ("gateway=-1", "positive whole number"),
    ("gateway=two", "positive whole number"),
    ("gateway=1.5", "positive whole number"),
    ("gateway", "expected SERVICE=COUNT"),
    ("gateway=2 gateway=3", "given twice"),
    ("auth=2", "auth runs once"),
])
def test_a_bad_scale_is_refused_with_the_reason(text, message):
    with pytest.raises(ValueError, match=message):
        devstack.parse_scale(text)


def test_run_takes_scale_as_one_argument_or_several(monkeypatch):
    seen = []
    monkeypatch.setattr(devstack, "run", lambda var_dir, monitor, scale: seen.append(scale) or 0)
    assert devstack.main(["run", "--scale", "gateway=2 converter=3"]) == 0
    assert devstack.main(["run", "--scale", "gateway=2", "notification=2"]) == 0
    assert devstack.main(["run"]) == 0
    assert seen == [{"gateway": 2, "converter": 3}, {"gateway": 2, "notification": 2}, {}]


def test_run_with_a_bad_scale_exits_with_a_usage_error(monkeypatch, capsys):
    monkeypatch.setattr(devstack, "run", lambda *a, **k: pytest.fail("started anyway"))
    with pytest.raises(SystemExit) as exited:
        devstack.main(["run", "--scale", "converter=3", "gateway=0"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "--scale: 'gateway=0': the count must be a positive whole number" in err


def _env():
    return {**devstack.DEV_DEFAULTS, "AUTH_URL": "http://127.0.0.1:5999",
            "PUBLIC_URL": "http://127.0.0.1:8999"}


def test_scaled_stack_names_ports_logs_and_heartbeats_every_replica(tmp_path):
    scale = {"gateway": 2, "converter": 3, "notification": 2}
    stack = devstack.build_stack(_env(), tmp_path, scale=scale)
    assert list(stack.processes) == [
        "mongodb", "mailsink", "auth", "gateway", "gateway-2",
        "converter", "converter-2", "converter-3", "notification", "notification-2"]
    gateways = stack.replicas("gateway")
    assert [p.name for p in gateways] == ["gateway", "gateway-2"]
    assert stack["gateway"] is gateways[0]
    assert [p.port for p in gateways] == [8999, 9000]
    assert [p.env["PORT"] for p in gateways] == ["8999", "9000"]
    assert all(p.argv[-1] == "gateway:create_app()" for p in gateways)
    assert stack["gateway-2"].log_path == tmp_path / "log" / "gateway-2.log"
    converters = stack.replicas("converter")
    assert [p.argv[-1] for p in converters] == ["converter"] * 3
    assert [Path(p.env["HEARTBEAT_FILE"]).name for p in converters] == [
        "converter.heartbeat", "converter-2.heartbeat", "converter-3.heartbeat"]
    assert stack["converter-3"].stop_timeout == stack["converter"].stop_timeout
    services = [p for s in devstack.SERVICES for p in stack.replicas(s)]
    assert len(services) == 8
    assert len({p.env["METRICS_PORT"] for p in services}) == 8
    assert set(devstack.metrics_urls(stack)) == {p.name for p in services}
    text = devstack._gateways_text(stack)
    assert "gateway         http://127.0.0.1:8999" in text
    assert "gateway-2       http://127.0.0.1:9000" in text


def test_one_of_each_by_default(tmp_path):
    stack = devstack.build_stack(_env(), tmp_path, scale={})
    assert list(stack.processes) == ["mongodb", "mailsink", *devstack.SERVICES]
    assert devstack._gateways_text(stack) == ""


@pytest.mark.parametrize("scale", [{"auth": 2}, {"gateway": 0}, {"mongodb": 2}])
def test_build_stack_refuses_a_scale_it_cannot_run(tmp_path, scale):
    with pytest.raises(ValueError, match="cannot scale"):
        devstack.build_stack(_env(), tmp_path, scale=scale)


def test_replicas_are_the_service_and_its_numbered_copies(tmp_path):
    def proc(name):
        return Process(name, ["true"], os.environ, tmp_path / f"{name}.log")

    stack = Stack(proc(n) for n in ("gateway-10", "gateway", "gateway-2", "gateway-x",
                                    "gatewayer", "converter"))
    assert [p.name for p in stack.replicas("gateway")] == ["gateway", "gateway-2", "gateway-10"]
    assert stack.replicas("auth") == []
