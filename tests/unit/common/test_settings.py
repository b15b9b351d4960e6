"""Environment settings fail fast, naming the variable that is wrong."""

import pytest

from common.settings import (
    ConfigError,
    MessagingSettings,
    MySQLSettings,
    env_bool,
    env_float,
    env_int,
    env_str,
    load_or_exit,
)
from tools.processes import ROOT


def test_required_variable_missing_names_it(monkeypatch):
    monkeypatch.delenv("MP3TEST_SECRET", raising=False)
    with pytest.raises(ConfigError, match="MP3TEST_SECRET"):
        env_str("MP3TEST_SECRET", required=True)


def test_required_variable_set_to_empty_is_missing(monkeypatch):
    monkeypatch.setenv("MP3TEST_SECRET", "")
    with pytest.raises(ConfigError, match="MP3TEST_SECRET"):
        env_str("MP3TEST_SECRET", required=True)


def test_optional_variable_falls_back_to_default(monkeypatch):
    monkeypatch.delenv("MP3TEST_NAME", raising=False)
    assert env_str("MP3TEST_NAME", "fallback") == "fallback"
    monkeypatch.setenv("MP3TEST_NAME", "given")
    assert env_str("MP3TEST_NAME", "fallback") == "given"


def test_bad_int_names_variable_and_value(monkeypatch):
    monkeypatch.setenv("MP3TEST_PORT", "eighty")
    with pytest.raises(ConfigError, match=r"MP3TEST_PORT.*'eighty'"):
        env_int("MP3TEST_PORT", 80)


def test_int_below_minimum_is_rejected(monkeypatch):
    monkeypatch.setenv("MP3TEST_WORKERS", "0")
    with pytest.raises(ConfigError, match="MP3TEST_WORKERS must be >= 1"):
        env_int("MP3TEST_WORKERS", 2, minimum=1)


def test_int_and_float_parse(monkeypatch):
    monkeypatch.setenv("MP3TEST_PORT", "8081")
    monkeypatch.setenv("MP3TEST_SECONDS", "2.5")
    assert env_int("MP3TEST_PORT", 80) == 8081
    assert env_float("MP3TEST_SECONDS", 1.0) == 2.5


def test_bad_float_names_variable(monkeypatch):
    monkeypatch.setenv("MP3TEST_SECONDS", "soon")
    with pytest.raises(ConfigError, match="MP3TEST_SECONDS"):
        env_float("MP3TEST_SECONDS", 1.0)


@pytest.mark.parametrize("raw, expected", [("1", True), ("Yes", True), ("on", True),
                                           ("0", False), ("FALSE", False), ("off", False)])
def test_bool_spellings(monkeypatch, raw, expected):
    monkeypatch.setenv("MP3TEST_FLAG", raw)
    assert env_bool("MP3TEST_FLAG", not expected) is expected


def test_bad_bool_names_variable(monkeypatch):
    monkeypatch.setenv("MP3TEST_FLAG", "maybe")
    with pytest.raises(ConfigError, match="MP3TEST_FLAG"):
        env_bool("MP3TEST_FLAG", False)


def _documented_default(name: str) -> str:
    """The default README's configuration table gives for ``name``."""
    for line in (ROOT / "README.md").read_text(encoding="utf-8").splitlines():
        if line.startswith(f"| `{name}` |"):
            return line.split("|")[3].strip().strip("`")
    raise AssertionError(f"{name} is not in README's configuration table")


def test_messaging_defaults_match_the_documentation(monkeypatch):
    for name in ("RABBITMQ_URL", "MAX_DELIVERY_ATTEMPTS", "RETRY_BASE_SECONDS",
                 "RETRY_MAX_SECONDS"):
        monkeypatch.delenv(name, raising=False)
    settings = MessagingSettings.from_env()
    assert settings.rabbitmq_url == _documented_default("RABBITMQ_URL")
    assert settings.max_attempts == int(_documented_default("MAX_DELIVERY_ATTEMPTS"))
    assert settings.retry_base_seconds == float(_documented_default("RETRY_BASE_SECONDS"))
    assert settings.retry_max_seconds == float(_documented_default("RETRY_MAX_SECONDS"))


MYSQL_VARIABLES = ("MYSQL_HOST", "MYSQL_PORT", "MYSQL_USER", "MYSQL_PASSWORD", "MYSQL_DB")


def test_mysql_defaults_match_the_documentation(monkeypatch):
    for name in MYSQL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    settings = MySQLSettings.from_env()
    assert settings.host == _documented_default("MYSQL_HOST")
    assert settings.port == int(_documented_default("MYSQL_PORT"))
    assert settings.user == _documented_default("MYSQL_USER")
    assert settings.password == "" and _documented_default("MYSQL_PASSWORD") == "empty"
    assert settings.db == _documented_default("MYSQL_DB")


def test_mysql_settings_come_from_their_variables(monkeypatch):
    for name, value in zip(MYSQL_VARIABLES, ("db.internal", "3307", "backup", "pw", "accounts"),
                           strict=True):
        monkeypatch.setenv(name, value)
    assert MySQLSettings.from_env() == MySQLSettings("db.internal", 3307, "backup", "pw",
                                                     "accounts")
    monkeypatch.setenv("MYSQL_PORT", "0")
    with pytest.raises(ConfigError, match="MYSQL_PORT must be >= 1"):
        MySQLSettings.from_env()


def test_load_or_exit_prints_one_line_and_exits_2(monkeypatch, capsys):
    monkeypatch.delenv("MP3TEST_SECRET", raising=False)
    with pytest.raises(SystemExit) as exc:
        load_or_exit(lambda: env_str("MP3TEST_SECRET", required=True), "auth")
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("auth: configuration error:") and "MP3TEST_SECRET" in err


# -- signing keys ------------------------------------------------------------------------------
def test_env_secret_accepts_32_random_bytes(monkeypatch):
    from common.settings import env_secret

    monkeypatch.setenv("MP3TEST_KEY", "k" * 31 + "é")  # 33 bytes in UTF-8
    assert env_secret("MP3TEST_KEY") == "k" * 31 + "é"


@pytest.mark.parametrize("value, reason", [
    ("k" * 31, "too short: 31 bytes, at least 32"),
    ("change-me", "example value"),
    ("change-me-too", "example value"),
])
def test_env_secret_refuses_short_and_example_values(monkeypatch, value, reason):
    from common.settings import env_secret

    monkeypatch.setenv("MP3TEST_KEY", value)
    with pytest.raises(ConfigError, match=reason) as caught:
        env_secret("MP3TEST_KEY")
    assert "MP3TEST_KEY" in str(caught.value) and "token_urlsafe(32)" in str(caught.value)
    assert value not in str(caught.value)


def test_env_secret_is_required(monkeypatch):
    from common.settings import env_secret

    monkeypatch.delenv("MP3TEST_KEY", raising=False)
    with pytest.raises(ConfigError, match="MP3TEST_KEY is required"):
        env_secret("MP3TEST_KEY")


def test_every_example_secret_is_refused_even_if_made_long(monkeypatch):
    from common.settings import EXAMPLE_SECRETS, env_secret

    for value in EXAMPLE_SECRETS:
        monkeypatch.setenv("MP3TEST_KEY", value)
        with pytest.raises(ConfigError, match="example value"):
            env_secret("MP3TEST_KEY", min_bytes=1)


def test_smtp_settings_read_their_variables(monkeypatch):
    from common.settings import SmtpSettings

    for name, value in {"SMTP_HOST": "mail.example", "SMTP_PORT": "2525", "SMTP_STARTTLS": "yes",
                        "SMTP_USERNAME": "u", "SMTP_PASSWORD": "p", "SMTP_FROM": "me@example",
                        "SMTP_TIMEOUT_SECONDS": "2.5"}.items():
        monkeypatch.setenv(name, value)
    assert SmtpSettings.from_env() == SmtpSettings("mail.example", 2525, True, "u", "p",
                                                   "me@example", 2.5)


def test_the_committed_example_keys_are_refused(monkeypatch):
    """Someone who copies an example secrets file unchanged gets a service that will not start."""
    from common.settings import env_secret
    from tools.processes import ROOT

    found = {}
    for path in (ROOT / "manifests/overlays/minikube/secrets").glob("*.env.example"):
        for line in path.read_text().splitlines():
            name, _, value = line.partition("=")
            if name in ("JWT_SECRET", "DOWNLOAD_URL_SECRET"):
                found[f"{path.name}:{name}"] = value
    assert {key.split(":")[1] for key in found} == {"JWT_SECRET", "DOWNLOAD_URL_SECRET"}
    for where, value in found.items():
        monkeypatch.setenv("MP3TEST_KEY", value)
        try:
            env_secret("MP3TEST_KEY")
        except ConfigError:
            continue
        pytest.fail(f"the example value of {where} would be accepted as a signing key")


def test_metrics_are_served_on_the_services_own_host(monkeypatch):
    """The metrics server listens where the service was told to (HOST), not everywhere."""
    from common.settings import MetricsSettings

    monkeypatch.delenv("HOST", raising=False)
    monkeypatch.delenv("METRICS_PORT", raising=False)
    assert MetricsSettings.from_env() == MetricsSettings(port=9100, host="0.0.0.0")
    assert (_documented_default("METRICS_PORT"), _documented_default("HOST")) == (
        "9100", "0.0.0.0")
    monkeypatch.setenv("HOST", "127.0.0.1")
    monkeypatch.setenv("METRICS_PORT", "9200")
    assert MetricsSettings.from_env() == MetricsSettings(port=9200, host="127.0.0.1")


# -- broker addresses --------------------------------------------------------------------------
CLUSTER = ("amqp://u:p@rabbitmq-0:5672/%2F, amqp://u:p@rabbitmq-1:5672/%2F,"
           "amqps://u:p@rabbitmq-2:5671/%2F")


def test_rabbitmq_url_may_list_the_nodes_of_a_cluster(monkeypatch):
    monkeypatch.setenv("RABBITMQ_URL", CLUSTER)
    assert MessagingSettings.from_env().rabbitmq_url == CLUSTER


@pytest.mark.parametrize("raw, says", [
    ("http://u:hunter2@mq:5672/%2F", "address 1 must be an amqp:// or amqps:// URL, not http://"),
    ("amqp://u:hunter2@mq:5672/%2F,mq2:5672", "address 2 must be an amqp:// or amqps:// URL"),
    ("amqp://u:hunter2@mq:5672/%2F,", "address 2 is empty"),
    ("amqp://u:hunter2@mq:56x2/%2F", "address 1 is not a valid URL"),
    ("amqp://u:hunter2@/%2F", "address 1 names no host"),
    ("amqp://u:hunter2@a/one,amqp://u:hunter2@b/two", "the same virtual host"),
])
def test_a_bad_broker_address_is_named_without_its_password(monkeypatch, raw, says):
    monkeypatch.setenv("RABBITMQ_URL", raw)
    with pytest.raises(ConfigError, match="RABBITMQ_URL") as exc:
        MessagingSettings.from_env()
    assert says in str(exc.value)
    assert "hunter2" not in str(exc.value)
