"""`conveyor.config`: value objects, CONVEYOR_* variables, flags layered on top."""

from __future__ import annotations

import pytest

from conveyor.cli.main import build_parser, server_config
from conveyor.config import ClientConfig, Config, ServerConfig, client_from_env, from_env
from conveyor.errors import InvalidInput


def test_defaults_without_environment() -> None:
    config = from_env({})
    assert config == Config()
    assert (config.server.host, config.server.port, config.server.workers) == \
        ("127.0.0.1", 8600, 1)
    assert (config.sqs.enabled, config.sqs.port, config.sqs.account_id) == \
        (True, 9324, "000000000000")
    assert config.database_url is None
    assert client_from_env({}).url == "http://127.0.0.1:8600"


def test_every_variable() -> None:
    config = from_env({
        "CONVEYOR_DATABASE_URL": "postgresql://u@h/db", "CONVEYOR_HOST": "0.0.0.0",
        "CONVEYOR_PORT": "9000", "CONVEYOR_WORKERS": "4", "CONVEYOR_REGION": "eu-west-1",
        "CONVEYOR_SQS_PORT": "9500", "CONVEYOR_SQS_ACCOUNT_ID": "123456789012",
        "CONVEYOR_NO_SQS": "yes", "CONVEYOR_MAX_REQUEST_BYTES": "2048"})
    assert config.database_url == "postgresql://u@h/db"
    assert config.server == ServerConfig("0.0.0.0", 9000, 4, 2048)
    assert (config.sqs.enabled, config.sqs.port, config.sqs.account_id) == \
        (False, 9500, "123456789012")
    assert config.region == "eu-west-1"
    client = client_from_env({"CONVEYOR_URL": "https://mq.example", "CONVEYOR_TIMEOUT": "5"})
    assert client == ClientConfig("https://mq.example", 5.0)


@pytest.mark.parametrize("env", [
    {"CONVEYOR_PORT": "http"}, {"CONVEYOR_PORT": "70000"}, {"CONVEYOR_WORKERS": "0"},
    {"CONVEYOR_NO_SQS": "maybe"}, {"CONVEYOR_SQS_ACCOUNT_ID": "42"},
])
def test_bad_values_name_the_variable(env: dict[str, str]) -> None:
    with pytest.raises(InvalidInput):
        from_env(env)
    with pytest.raises(InvalidInput):
        client_from_env({"CONVEYOR_URL": "ftp://x"})


def test_flags_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVEYOR_PORT", "9000")
    monkeypatch.setenv("CONVEYOR_DATABASE_URL", "sqlite:///env.db")
    args = build_parser().parse_args(["serve", "--port", "0", "--no-sqs", "--workers", "2"])
    config = server_config(args)
    assert (config.server.port, config.server.workers) == (0, 2)
    assert config.database_url == "sqlite:///env.db"
    assert config.sqs.enabled is False


def test_sqs_relaxed_from_the_environment_or_the_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    assert from_env({}).sqs.relaxed is False  # AWS's 60 s waits by default
    assert from_env({"CONVEYOR_SQS_RELAXED": "1"}).sqs.relaxed is True
    monkeypatch.delenv("CONVEYOR_SQS_RELAXED", raising=False)
    assert server_config(build_parser().parse_args(["serve"])).sqs.relaxed is False
    args = build_parser().parse_args(["serve", "--sqs-relaxed"])
    assert server_config(args).sqs.relaxed is True
